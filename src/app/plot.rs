//! `tuna plot`: the dashboard's plots as SVG files, drawn with plotters from the same plot-ready
//! JSON the page reads (`/api/v1/experiments/{name}/plots/*`), so a plot means the same thing in
//! both places.
//!
//! ```text
//! client.plot(name, kind) ──▶ plots::{History, Parameters, Importance, Intermediate} ──▶ plotters (SVG) ──▶ file
//! ```
//! Marks: a succeeded trial is a filled circle, a failed one a red cross, any other phase with a
//! value (stopped, early-stopped, …) a hollow circle; legends use squares so that the circles in
//! the file are the trials.

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::PlotKind;
use crate::client::Client;
use crate::plots::{Axis, History, Importance, Intermediate, Parameters};
use crate::spec::Goal;
use crate::trial::TrialPhase;

/// The size of a single plot, in pixels.
const SIZE: (u32, u32) = (960, 540);
/// The size of one slice plot in the grid of them.
const SLICE: (u32, u32) = (480, 320);
/// At most this many learning curves are drawn (the first ones), so the lines stay readable.
const MAX_CURVES: usize = 200;
const FONT: &str = "sans-serif";

/// A drawn plot: the SVG and a line saying what is in it.
pub struct Drawn {
    pub svg: String,
    pub summary: String,
}

/// plotters' errors carry their backend's error type; here they only need their sentence.
fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("failed to draw the plot: {e}")
}

/// Reads the plot's data from `client` and draws it.
pub async fn draw(client: &Client, name: &str, kind: PlotKind) -> anyhow::Result<Drawn> {
    let reading = || format!("failed to read the plot data of {name}");
    let mut svg = String::new();
    let summary = match kind {
        PlotKind::History => {
            let data: History = client.plot(name, "history").await.with_context(reading)?;
            history(&mut svg, &data)?
        }
        PlotKind::Parallel => {
            let data: Parameters = client.plot(name, "parameters").await.with_context(reading)?;
            parallel(&mut svg, &data)?
        }
        PlotKind::Slice => {
            let data: Parameters = client.plot(name, "parameters").await.with_context(reading)?;
            slices(&mut svg, &data)?
        }
        PlotKind::Importance => {
            let data: Importance = client.plot(name, "importance").await.with_context(reading)?;
            importance(&mut svg, &data)?
        }
        PlotKind::Intermediate => {
            let data: Intermediate = client.plot(name, "intermediate").await.with_context(reading)?;
            intermediate(&mut svg, &data)?
        }
    };
    Ok(Drawn { svg, summary })
}

fn phase_colour(phase: TrialPhase) -> RGBColor {
    match phase {
        TrialPhase::Succeeded => RGBColor(31, 119, 180),
        TrialPhase::Failed => RGBColor(214, 39, 40),
        TrialPhase::Running => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

/// `lo..hi` widened by 5% each side (and made non-empty), so marks at the ends stay inside.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |b, v| Some(b.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v)))))
}

/// A number to 6 significant digits, as the tables print it.
fn number(v: &f64) -> String {
    crate::leaderboard::number(*v)
}

fn history(svg: &mut String, data: &History) -> anyhow::Result<String> {
    let values = bounds(data.points.iter().filter_map(|p| p.objective)).unwrap_or((0.0, 1.0));
    let bottom = values.0;
    let last = data.points.iter().map(|p| p.index).max().unwrap_or(0);
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let title = format!("{} per trial ({})", data.metric, goal(data.goal));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(padded(0.0, f64::from(last)), padded(values.0, values.1))
        .map_err(drawing)?;
    let whole = |v: &f64| format!("{v:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("trial").y_desc(&data.metric).x_label_formatter(&whole).y_label_formatter(&number);
    mesh.draw().map_err(drawing)?;
    let best: Vec<(f64, f64)> = data.points.iter().filter_map(|p| p.best.map(|b| (f64::from(p.index), b))).collect();
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(LineSeries::new(best, orange.stroke_width(2)))
        .map_err(drawing)?
        .label("best so far")
        .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], orange.filled()));
    let at = |p: &crate::plots::HistoryPoint| (f64::from(p.index), p.objective.unwrap_or(bottom));
    let succeeded = data.points.iter().filter(|p| p.phase == TrialPhase::Succeeded && p.objective.is_some());
    let blue = phase_colour(TrialPhase::Succeeded);
    chart
        .draw_series(succeeded.clone().map(|p| Circle::new(at(p), 4, blue.filled())))
        .map_err(drawing)?
        .label("succeeded")
        .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], blue.filled()));
    let red = phase_colour(TrialPhase::Failed);
    let failed: Vec<_> = data.points.iter().filter(|p| p.phase == TrialPhase::Failed).collect();
    chart
        .draw_series(failed.iter().map(|p| Cross::new(at(p), 5, red.stroke_width(2))))
        .map_err(drawing)?
        .label("failed (without a value: at the bottom)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], red.filled()));
    let others: Vec<_> = data
        .points
        .iter()
        .filter(|p| p.phase != TrialPhase::Succeeded && p.phase != TrialPhase::Failed && p.objective.is_some())
        .collect();
    let purple = phase_colour(TrialPhase::Stopped);
    chart
        .draw_series(others.iter().map(|p| Circle::new(at(p), 4, purple.stroke_width(2))))
        .map_err(drawing)?
        .label("other phases")
        .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], purple.filled()));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(drawing)?;
    root.present().map_err(drawing)?;
    Ok(format!(
        "history of {} trials ({} succeeded, {} failed, {} other with a value)",
        data.points.len(),
        succeeded.count(),
        failed.len(),
        others.len()
    ))
}

fn goal(goal: Goal) -> &'static str {
    match goal {
        Goal::Maximize => "maximize",
        Goal::Minimize => "minimize",
    }
}

/// How good `v` is within `lo..hi` for `goal`, from 0 (worst) to 1 (best).
fn goodness(goal: Goal, lo: f64, hi: f64, v: f64) -> f64 {
    let u = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    if goal == Goal::Maximize { u } else { 1.0 - u }
}

fn ends(axis: &Axis) -> Vec<(f64, String)> {
    if axis.labels.is_empty() {
        vec![(axis.min, number(&axis.min)), (axis.max, number(&axis.max))]
    } else {
        axis.labels.iter().enumerate().map(|(i, l)| (i as f64, l.clone())).collect()
    }
}

fn parallel(svg: &mut String, data: &Parameters) -> anyhow::Result<String> {
    let rows: Vec<_> = data.trials.iter().filter(|t| t.objective.is_some_and(f64::is_finite)).collect();
    let (lo, hi) = bounds(rows.iter().filter_map(|t| t.objective)).unwrap_or((0.0, 1.0));
    let objective = Axis {
        name: data.metric.clone(),
        kind: crate::spec::ParameterType::Double,
        log: false,
        min: lo,
        max: hi,
        labels: Vec::new(),
    };
    let axes: Vec<&Axis> = data.axes.iter().chain(std::iter::once(&objective)).collect();
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let last = (axes.len().max(2) - 1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("parallel coordinates: parameters → {}", data.metric), (FONT, 20))
        .margin(30)
        .build_cartesian_2d(-0.1..last + 0.1, -0.12..1.05)
        .map_err(drawing)?;
    for t in &rows {
        let objective_value = t.objective.unwrap_or(lo);
        let mut coords: Vec<(f64, f64)> = Vec::new();
        for (i, axis) in axes.iter().enumerate() {
            let value = if i < data.axes.len() { t.values.get(i).copied().flatten() } else { Some(objective_value) };
            if let Some(v) = value {
                coords.push((i as f64, axis.unit(v)));
            }
        }
        let g = goodness(data.goal, lo, hi, objective_value);
        let colour = HSLColor(0.58, 0.7, 0.85 - 0.55 * g);
        chart.draw_series(std::iter::once(PathElement::new(coords, colour.stroke_width(1)))).map_err(drawing)?;
    }
    for (i, axis) in axes.iter().enumerate() {
        let x = i as f64;
        chart.draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, 1.0)], BLACK))).map_err(drawing)?;
        let name = if axis.log { format!("{} (log)", axis.name) } else { axis.name.clone() };
        chart.draw_series(std::iter::once(Text::new(name, (x, -0.06), (FONT, 14)))).map_err(drawing)?;
        for (v, label) in ends(axis) {
            chart.draw_series(std::iter::once(Text::new(label, (x, axis.unit(v)), (FONT, 11)))).map_err(drawing)?;
        }
    }
    root.present().map_err(drawing)?;
    Ok(format!("parallel coordinates of {} trials over {} parameters", rows.len(), data.axes.len()))
}

fn slices(svg: &mut String, data: &Parameters) -> anyhow::Result<String> {
    let n = data.axes.len().max(1);
    let columns = n.min(2);
    let rows = n.div_ceil(columns);
    let size = (SLICE.0 * columns as u32, SLICE.1 * rows as u32);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let areas = root.split_evenly((rows, columns));
    let mut drawn = 0;
    for (i, (axis, area)) in data.axes.iter().zip(areas.iter()).enumerate() {
        let pairs: Vec<(f64, f64)> = data
            .trials
            .iter()
            .filter_map(|t| Some((t.values.get(i).copied().flatten()?, t.objective.filter(|v| v.is_finite())?)))
            .collect();
        drawn += pairs.len();
        slice(area, axis, &data.metric, &pairs)?;
    }
    root.present().map_err(drawing)?;
    Ok(format!("slice plots of {} parameters ({drawn} points)", data.axes.len()))
}

fn slice(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    axis: &Axis,
    metric: &str,
    pairs: &[(f64, f64)],
) -> anyhow::Result<()> {
    let (lo, hi) = bounds(pairs.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
    let caption = if axis.log { format!("{} (log)", axis.name) } else { axis.name.clone() };
    let mut builder = ChartBuilder::on(area);
    builder.caption(caption, (FONT, 16)).margin(10).x_label_area_size(30).y_label_area_size(60);
    let blue = phase_colour(TrialPhase::Succeeded);
    if axis.log && axis.min > 0.0 {
        let mut chart =
            builder.build_cartesian_2d((axis.min..axis.max).log_scale(), padded(lo, hi)).map_err(drawing)?;
        chart
            .configure_mesh()
            .y_desc(metric)
            .x_label_formatter(&number)
            .y_label_formatter(&number)
            .draw()
            .map_err(drawing)?;
        chart.draw_series(pairs.iter().map(|&p| Circle::new(p, 4, blue.filled()))).map_err(drawing)?;
        return Ok(());
    }
    let x_range =
        if axis.labels.is_empty() { padded(axis.min, axis.max) } else { -0.5..axis.labels.len() as f64 - 0.5 };
    let mut chart = builder.build_cartesian_2d(x_range, padded(lo, hi)).map_err(drawing)?;
    let labels = axis.labels.clone();
    let categorical = move |v: &f64| {
        let nearest = v.round();
        if (v - nearest).abs() < 0.05 && nearest >= 0.0 {
            labels.get(nearest as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(metric).y_label_formatter(&number);
    if axis.labels.is_empty() {
        mesh.x_label_formatter(&number).draw().map_err(drawing)?;
    } else {
        mesh.x_labels(axis.labels.len() * 2 + 1).x_label_formatter(&categorical).draw().map_err(drawing)?;
    }
    chart.draw_series(pairs.iter().map(|&p| Circle::new(p, 4, blue.filled()))).map_err(drawing)?;
    Ok(())
}

fn importance(svg: &mut String, data: &Importance) -> anyhow::Result<String> {
    let n = data.parameters.len().max(1);
    let height = (120 + 36 * n as u32).max(240);
    let root = SVGBackend::with_string(svg, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("parameter importance ({} succeeded trials)", data.trials), (FONT, 20))
        .margin(16)
        .x_label_area_size(50)
        .build_cartesian_2d(0.0..1.25, 0.0..n as f64)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(&data.method)
        .x_label_formatter(&|v: &f64| format!("{:.0}%", v * 100.0))
        .draw()
        .map_err(drawing)?;
    let blue = phase_colour(TrialPhase::Succeeded);
    for (i, p) in data.parameters.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let bar = Rectangle::new([(0.0, y + 0.15), (p.importance, y + 0.85)], blue.filled());
        chart.draw_series(std::iter::once(bar)).map_err(drawing)?;
        let label = format!("{} {:.1}%", p.name, 100.0 * p.importance);
        chart
            .draw_series(std::iter::once(Text::new(label, (p.importance + 0.01, y + 0.65), (FONT, 14))))
            .map_err(drawing)?;
    }
    root.present().map_err(drawing)?;
    Ok(format!("importance of {} parameters over {} trials", data.parameters.len(), data.trials))
}

fn intermediate(svg: &mut String, data: &Intermediate) -> anyhow::Result<String> {
    let mut curves: Vec<_> = data.curves.iter().filter(|c| !c.points.is_empty()).collect();
    curves.truncate(MAX_CURVES);
    let steps = bounds(curves.iter().flat_map(|c| c.points.iter().map(|p| p[0]))).unwrap_or((0.0, 1.0));
    let values = bounds(curves.iter().flat_map(|c| c.points.iter().map(|p| p[1]))).unwrap_or((0.0, 1.0));
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} by step", data.metric), (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(padded(steps.0, steps.1), padded(values.0, values.1))
        .map_err(drawing)?;
    chart.configure_mesh().x_desc("step").y_desc(&data.metric).y_label_formatter(&number).draw().map_err(drawing)?;
    for c in &curves {
        let line = LineSeries::new(c.points.iter().map(|p| (p[0], p[1])), phase_colour(c.phase).stroke_width(1));
        chart.draw_series(line).map_err(drawing)?;
    }
    root.present().map_err(drawing)?;
    Ok(format!("learning curves of {} trials", curves.len()))
}

/// The families tried for the SVG's `sans-serif`, in order (Debian's fonts first).
const SANS_SERIF: &[&str] = &["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"];

/// The plot as PNG: the SVG drawn by resvg, its text in the system's fonts (left out where the
/// system has none).
pub fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let installed = |family: &str| fonts.faces().any(|face| face.families.iter().any(|(name, _)| name == family));
    if let Some(family) = SANS_SERIF.iter().copied().find(|f| installed(f)) {
        fonts.set_sans_serif_family(family);
    }
    let tree = usvg::Tree::from_str(svg, &options).context("the plot's SVG did not parse")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).context("the plot has no size")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("failed to encode the PNG")
}
