// tuna dashboard: the plots of one experiment, drawn from the plot-ready JSON of
// /api/v1/experiments/{name}/plots/*. Line and point charts are uPlot's (vendored); parallel
// coordinates, importance bars and the pair plot are plain SVG lines and rectangles.
// Every text that comes from the store goes in through textContent, never as markup.
"use strict";

const Charts = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  // One colour per phase; a phase this page does not know yet is drawn in the last one.
  const PHASE_COLOURS = { Succeeded: "#1f77b4", Failed: "#d62728", Running: "#2ca02c", Pending: "#999999" };
  const OTHER_COLOUR = "#9467bd";
  const colour = (phase) => PHASE_COLOURS[phase] || OTHER_COLOUR;
  // At most this many learning curves are drawn (the best ones): more would hide each other.
  const MAX_CURVES = 200;
  // Each slice plot's width: two or three side by side on a laptop screen.
  const SLICE_WIDTH = 420;
  // The pair plot's surface: cells per side.
  const CONTOUR_CELLS = 24;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function text(x, y, content, attrs) {
    const node = svg("text", Object.assign({ x, y }, attrs || {}));
    node.textContent = content;
    return node;
  }

  function width(container) {
    return Math.max(320, Math.min(container.clientWidth || 800, 1100));
  }

  function note(container, message) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = message;
    container.replaceChildren(p);
  }

  // A uPlot chart in `container`, replacing what was there.
  function uplot(container, opts, data) {
    container.replaceChildren();
    opts.width = opts.width || width(container);
    opts.height = opts.height || 280;
    return new uPlot(opts, data, container);
  }

  const points = (size, fill) => ({ show: true, size: size || 6, fill });
  // Axis labels to 6 significant digits (a log axis's unlabelled minor ticks stay blank).
  const ticks = (fmt) => (u, splits) => splits.map((v) => (v === null || v === undefined ? "" : fmt(v)));
  const noLine = () => null;

  // Optimization history: each trial's objective by index, the best so far as a line; failed
  // trials without a value are drawn on the bottom edge in red, other phases in their colour.
  function history(container, data, fmt) {
    const pts = data.points;
    container.dataset.points = String(pts.length);
    if (pts.length === 0) return note(container, "no trials yet");
    const values = pts.map((p) => p.objective).filter((v) => v !== null && Number.isFinite(v));
    const bottom = values.length ? Math.min(...values) : 0;
    const x = pts.map((p) => p.index);
    const only = (keep) => pts.map((p) => (keep(p) ? p.objective : null));
    const succeeded = only((p) => p.phase === "Succeeded");
    const failed = pts.map((p) => (p.phase === "Failed" ? (p.objective ?? bottom) : null));
    const other = only((p) => p.phase !== "Succeeded" && p.phase !== "Failed");
    const best = pts.map((p) => p.best);
    uplot(container, {
      title: `${data.metric} per trial (${data.goal})`,
      scales: { x: { time: false } },
      axes: [{ label: "trial" }, { label: data.metric, values: ticks(fmt) }],
      series: [
        { label: "trial" },
        { label: "succeeded", stroke: colour("Succeeded"), paths: noLine, points: points(6, colour("Succeeded")) },
        { label: "best so far", stroke: "#ff7f0e", width: 2, spanGaps: true, points: { show: false } },
        { label: "failed", stroke: colour("Failed"), paths: noLine, points: points(7, colour("Failed")) },
        { label: "other phases", stroke: OTHER_COLOUR, paths: noLine, points: points(6) },
      ],
    }, [x, succeeded, best, failed, other]);
  }

  // Where a coordinate lies on an axis, on [0, 1] (log axes in log space).
  function unit(axis, v) {
    let [lo, hi, x] = [axis.min, axis.max, v];
    if (axis.log && lo > 0 && v > 0) [lo, hi, x] = [Math.log(lo), Math.log(hi), Math.log(v)];
    return hi > lo ? Math.min(1, Math.max(0, (x - lo) / (hi - lo))) : 0.5;
  }

  function tickLabels(axis, fmt) {
    if (axis.labels.length) return axis.labels.map((l, i) => [i, l]);
    const ticks = [axis.min, axis.max];
    if (axis.log && axis.min > 0) ticks.splice(1, 0, Math.sqrt(axis.min * axis.max));
    else ticks.splice(1, 0, (axis.min + axis.max) / 2);
    return ticks.map((t) => [t, fmt(t)]);
  }

  // Parallel coordinates: one vertical axis per parameter and one for the objective; one line per
  // trial with an objective, coloured from the worst (light) to the best (dark).
  function parallel(container, data, fmt) {
    const rows = data.trials.filter((t) => t.objective !== null && Number.isFinite(t.objective));
    container.dataset.lines = String(rows.length);
    if (rows.length === 0) return note(container, "no trial has an objective yet");
    const ys = rows.map((t) => t.objective);
    const objective = { name: data.metric, min: Math.min(...ys), max: Math.max(...ys), log: false, labels: [] };
    const axes = data.axes.concat([objective]);
    const [w, h, top, bottom, side] = [width(container), 300, 30, 40, 60];
    const x = (i) => side + (i * (w - 2 * side)) / Math.max(1, axes.length - 1);
    const y = (axis, v) => top + (1 - unit(axis, v)) * (h - top - bottom);
    const root = svg("svg", { width: w, height: h, class: "parallel", role: "img" });
    const goodness = (v) => {
      const u = unit(objective, v);
      return data.goal === "maximize" ? u : 1 - u;
    };
    for (const t of rows) {
      const coords = t.values.concat([t.objective]);
      const pts = [];
      coords.forEach((v, i) => {
        if (v !== null) pts.push(`${x(i).toFixed(1)},${y(axes[i], v).toFixed(1)}`);
      });
      const g = goodness(t.objective);
      const line = svg("polyline", {
        points: pts.join(" "),
        fill: "none",
        stroke: `hsl(210, 70%, ${Math.round(85 - 55 * g)}%)`,
        "stroke-width": 1.2,
        "data-trial": t.trial,
      });
      const title = svg("title");
      title.textContent = `${t.trial}: ${data.metric} = ${fmt(t.objective)}`;
      line.appendChild(title);
      root.appendChild(line);
    }
    axes.forEach((axis, i) => {
      root.appendChild(svg("line", { x1: x(i), x2: x(i), y1: top, y2: h - bottom, stroke: "#333" }));
      const suffix = axis.log ? " (log)" : "";
      root.appendChild(text(x(i), h - bottom + 28, axis.name + suffix, { "text-anchor": "middle", class: "axis-name" }));
      for (const [v, label] of tickLabels(axis, fmt)) {
        root.appendChild(text(x(i) + 4, y(axis, v) + 4, label, { class: "tick" }));
      }
    });
    container.replaceChildren(root);
  }

  // Slice plots: the objective against each parameter alone (categories at their positions).
  function slices(container, data, fmt) {
    container.replaceChildren();
    const rows = data.trials.filter((t) => t.objective !== null && Number.isFinite(t.objective));
    if (rows.length === 0) return note(container, "no trial has an objective yet");
    data.axes.forEach((axis, i) => {
      const cell = document.createElement("div");
      cell.className = "slice";
      container.appendChild(cell);
      const pairs = rows.filter((t) => t.values[i] !== null).map((t) => [t.values[i], t.objective]);
      pairs.sort((a, b) => a[0] - b[0]);
      const categorical = axis.labels.length > 0;
      const xAxis = { label: axis.name + (axis.log ? " (log)" : "") };
      if (categorical) {
        xAxis.splits = () => axis.labels.map((_, k) => k);
        xAxis.values = (u, splits) => splits.map((s) => axis.labels[s] ?? "");
      } else {
        xAxis.values = ticks(fmt);
      }
      const scaleX = { time: false };
      if (categorical) scaleX.range = () => [-0.5, axis.labels.length - 0.5];
      if (axis.log && axis.min > 0) scaleX.distr = 3;
      uplot(cell, {
        width: SLICE_WIDTH,
        height: 220,
        title: axis.name,
        legend: { show: false },
        scales: { x: scaleX },
        axes: [xAxis, { label: data.metric, values: ticks(fmt) }],
        series: [{}, { label: data.metric, stroke: colour("Succeeded"), paths: noLine, points: points(5, colour("Succeeded")) }],
      }, [pairs.map((p) => p[0]), pairs.map((p) => p[1])]);
    });
  }

  // A pair of parameters: each trial at (a, b), its dot coloured by the objective (blue worst, red
  // best), over a surface interpolated from the trials.
  function pair(container, data, a, b, fmt) {
    const rows = data.trials.filter((t) => t.objective !== null && t.values[a] !== null && t.values[b] !== null);
    container.dataset.points = String(rows.length);
    if (rows.length === 0) return note(container, "no trial has both parameters and an objective");
    const ys = rows.map((t) => t.objective);
    const objective = { min: Math.min(...ys), max: Math.max(...ys), log: false, labels: [] };
    const [w, h, m] = [Math.min(width(container), 520), 360, 50];
    const [ax, bx] = [data.axes[a], data.axes[b]];
    const root = svg("svg", { width: w, height: h, class: "pair", role: "img" });
    const [pw, ph] = [w - m - 10, h - m - 10];
    const hue = (v) => {
      const u = unit(objective, v);
      return Math.round(240 - 240 * (data.goal === "maximize" ? u : 1 - u));
    };
    // The surface under the dots: each cell the inverse-distance-weighted mean of the trials'
    // objectives (distances on the two axes' unit scales), so its bands read like a filled contour.
    const coords = rows.map((t) => [unit(ax, t.values[a]), unit(bx, t.values[b]), t.objective]);
    for (let i = 0; i < CONTOUR_CELLS; i++) {
      for (let j = 0; j < CONTOUR_CELLS; j++) {
        const [cu, cv] = [(i + 0.5) / CONTOUR_CELLS, (j + 0.5) / CONTOUR_CELLS];
        let [sum, weights] = [0, 0];
        for (const [u, v, y] of coords) {
          const wgt = 1 / ((u - cu) ** 2 + (v - cv) ** 2 + 1e-4);
          sum += wgt * y;
          weights += wgt;
        }
        root.appendChild(svg("rect", {
          x: (m + i * pw / CONTOUR_CELLS).toFixed(1),
          y: (10 + (CONTOUR_CELLS - 1 - j) * ph / CONTOUR_CELLS).toFixed(1),
          width: (pw / CONTOUR_CELLS + 0.5).toFixed(1),
          height: (ph / CONTOUR_CELLS + 0.5).toFixed(1),
          fill: `hsl(${hue(sum / weights)}, 60%, 82%)`,
          class: "surface",
        }));
      }
    }
    root.appendChild(svg("rect", { x: m, y: 10, width: pw, height: ph, fill: "none", stroke: "#333" }));
    for (const t of rows) {
      const dot = svg("circle", {
        cx: (m + unit(ax, t.values[a]) * (w - m - 10)).toFixed(1),
        cy: (h - m - unit(bx, t.values[b]) * (h - m - 10)).toFixed(1),
        r: 5,
        fill: `hsl(${hue(t.objective)}, 75%, 45%)`,
        stroke: "#222",
        "stroke-width": 0.6,
      });
      const title = svg("title");
      title.textContent = `${t.trial}: ${data.metric} = ${fmt(t.objective)}`;
      dot.appendChild(title);
      root.appendChild(dot);
    }
    root.appendChild(text(w / 2, h - 12, ax.name + (ax.log ? " (log)" : ""), { "text-anchor": "middle" }));
    root.appendChild(text(12, h / 2, bx.name + (bx.log ? " (log)" : ""), { transform: `rotate(-90 12 ${h / 2})`, "text-anchor": "middle" }));
    container.replaceChildren(root);
  }

  // Importance: one bar per parameter, its share of the objective's explained variance.
  function importance(container, data) {
    container.replaceChildren();
    const method = document.createElement("p");
    method.className = "note";
    method.textContent = `${data.method} (${data.trials} succeeded trials)`;
    container.appendChild(method);
    if (data.parameters.length === 0) return;
    const [w, row, label] = [Math.min(width(container), 700), 24, 160];
    const root = svg("svg", { width: w, height: row * data.parameters.length + 10, class: "importance", role: "img" });
    data.parameters.forEach((p, i) => {
      root.appendChild(text(0, i * row + 17, p.name, { class: "tick" }));
      root.appendChild(svg("rect", { x: label, y: i * row + 4, height: row - 8, width: Math.max(1, p.importance * (w - label - 60)), fill: colour("Succeeded") }));
      root.appendChild(text(label + p.importance * (w - label - 60) + 6, i * row + 17, `${(100 * p.importance).toFixed(1)}%`, { class: "tick" }));
    });
    container.appendChild(root);
  }

  // Intermediate values: every trial's objective metric by step, coloured by phase (finished
  // other than succeeded or failed, e.g. stopped early: dashed).
  function intermediate(container, data, goal, fmt) {
    let curves = data.curves.filter((c) => c.points.length > 0);
    container.dataset.curves = String(curves.length);
    if (curves.length === 0) return note(container, "no trial reported its objective metric with steps yet");
    if (curves.length > MAX_CURVES) {
      const last = (c) => c.points[c.points.length - 1][1];
      curves = curves.slice().sort((p, q) => (goal === "maximize" ? last(q) - last(p) : last(p) - last(q))).slice(0, MAX_CURVES);
    }
    const tables = curves.map((c) => [c.points.map((p) => p[0]), c.points.map((p) => p[1])]);
    const joined = uPlot.join(tables);
    const known = (phase) => phase === "Succeeded" || phase === "Failed" || phase === "Running";
    uplot(container, {
      title: `${data.metric} by step`,
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: data.metric, values: ticks(fmt) }],
      series: [{}].concat(curves.map((c) => ({
        label: c.trial,
        stroke: colour(c.phase),
        dash: known(c.phase) ? undefined : [6, 4],
        spanGaps: true,
        points: { show: c.points.length === 1 },
      }))),
    }, joined);
  }

  return { history, parallel, slices, pair, importance, intermediate, colour };
})();
