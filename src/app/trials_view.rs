//! `tuna trials`: every trial of an experiment in index order, as a table for people (6
//! significant digits, the one-line cause), JSON, or CSV (every digit).

use crate::cli::Format;
use crate::leaderboard;
use crate::trial::Trial;

/// The trials in the format asked for.
pub fn render(trials: &[Trial], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        // Through a `Value`, so the keys come out sorted as they always have.
        Format::Json => serde_json::to_string_pretty(&serde_json::to_value(trials)?)? + "\n",
        Format::Csv => csv(trials),
        Format::Table => table(trials),
    })
}

fn table(trials: &[Trial]) -> String {
    let header = ["trial", "phase", "objective", "step", "parameters", "cause"].map(String::from).to_vec();
    let rows = trials.iter().map(|t| {
        let params: Vec<String> = t.parameters.iter().map(|(k, v)| format!("{k}={}", leaderboard::param(v))).collect();
        vec![
            t.name.clone(),
            format!("{:?}", t.phase),
            t.objective.map(leaderboard::number).unwrap_or_default(),
            t.last_step.map(|s| s.to_string()).unwrap_or_default(),
            params.join(" "),
            leaderboard::cause(t).unwrap_or_default(),
        ]
    });
    let rows: Vec<Vec<String>> = std::iter::once(header).chain(rows).collect();
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            cells.join("  ").trim_end().to_string() + "\n"
        })
        .collect()
}

fn csv(trials: &[Trial]) -> String {
    let escape = |c: String| if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c };
    let header = "trial,phase,reason,objective,objectiveStep,lastStep,parameters,cause\n".to_string();
    let rows = trials.iter().map(|t| {
        let cells = [
            t.name.clone(),
            format!("{:?}", t.phase),
            t.reason.as_ref().map(|r| r.as_str().to_string()).unwrap_or_default(),
            t.objective.map(|v| serde_json::to_string(&v).unwrap_or_default()).unwrap_or_default(),
            t.objective_step.map(|s| s.to_string()).unwrap_or_default(),
            t.last_step.map(|s| s.to_string()).unwrap_or_default(),
            serde_json::to_string(&t.parameters).unwrap_or_default(),
            leaderboard::cause(t).unwrap_or_default(),
        ];
        cells.into_iter().map(escape).collect::<Vec<_>>().join(",") + "\n"
    });
    std::iter::once(header).chain(rows).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Assignment;
    use crate::space::ParamValue;

    #[test]
    fn the_table_keeps_six_significant_digits_and_csv_every_digit() {
        let mut parameters = Assignment::new();
        parameters.insert("decay".into(), ParamValue::Float(1e-9));
        let mut t = Trial::new("e", 0, parameters, jiff::Timestamp::UNIX_EPOCH);
        t.objective = Some(3.6123456789e-9);
        let table = table(std::slice::from_ref(&t));
        assert!(table.contains("3.61235e-9") && table.contains("decay=1e-9"), "{table}");
        let csv = csv(&[t]);
        assert!(csv.contains(",3.6123456789e-9,"), "{csv}");
    }
}
