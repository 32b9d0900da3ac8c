//! The table of a sampler swap ([`SwapReport::table`]): the reference, one
//! line per combination with the Pareto front starred, the count of those
//! that ran, and the recommendation.

use super::{Quality, SwapReport};

impl SwapReport {
    /// The table `wgraph bench --swap` prints: the reference, one line per
    /// combination (the front starred), the front's count, the recommendation.
    pub fn table(&self) -> String {
        let with_truth = self.quality == Quality::GroundTruth;
        let mut table = format!(
            "reference: {} ({:.2} ms/tick p50); quality: {}\n",
            self.reference.join(" "),
            self.reference_ms_per_tick_p50,
            if with_truth {
                "PSNR against the ground truth (world seed)"
            } else {
                "PSNR against the reference"
            }
        );
        table.push_str(&format!(
            "{:<40} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9} {:>7}",
            "combination", "p50 ms", "p99 ms", "fps", "denoiser", "passes", "PSNR ref", "SSIM"
        ));
        if with_truth {
            table.push_str(&format!(" {:>9} {:>7}", "PSNR GT", "SSIM GT"));
        }
        table.push_str(" front\n");
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        for r in &self.rows {
            let name = &r.label;
            let Some(f) = &r.figures else {
                let why = r.skipped.as_deref().unwrap_or("failed");
                table.push_str(&format!("{name:<40} skipped: {why}\n"));
                continue;
            };
            table.push_str(&format!(
                "{name:<40} {:>9.2} {:>9.2} {:>7.1} {:>9.1} {:>7.1} {:>9.2} {:>7.3}",
                f.ms_per_tick_p50,
                f.ms_per_tick_p99,
                f.fps,
                f.denoiser_calls_per_tick,
                f.denoiser_passes_per_tick,
                f.psnr_vs_reference,
                f.ssim_vs_reference
            ));
            if with_truth {
                table.push_str(&format!(
                    " {:>9.2} {:>7.3}",
                    nan(f.psnr_vs_ground_truth),
                    nan(f.ssim_vs_ground_truth)
                ));
            }
            table.push_str(if f.pareto { "     *\n" } else { "\n" });
        }
        let skipped = self.rows.iter().filter(|r| r.figures.is_none()).count();
        table.push_str(&format!(
            "* Pareto front: fastest for its quality ({} of {} ran{})\n",
            self.rows.len() - skipped,
            self.rows.len(),
            if skipped > 0 {
                format!(", {skipped} skipped: they do not apply")
            } else {
                String::new()
            }
        ));
        let chosen = self.recommended.as_ref().and_then(|rec| {
            let f = self.rows.get(rec.row)?.figures.as_ref()?;
            Some((rec, f))
        });
        match chosen {
            Some((rec, f)) => {
                let target = match (rec.target_fps, rec.target_psnr) {
                    (Some(f), _) => format!("for ≥ {f} fps"),
                    (_, Some(p)) => format!("for ≥ {p} dB"),
                    _ => String::new(),
                };
                table.push_str(&format!(
                    "recommended {target}: {} ({:.1} fps, {:.2} ms/tick p50, {:.2} dB)\n",
                    self.rows[rec.row].label,
                    f.fps,
                    f.ms_per_tick_p50,
                    nan(f.psnr(self.quality))
                ));
            }
            None => {
                let names: Vec<&str> = self
                    .rows
                    .iter()
                    .filter(|r| r.figures.as_ref().is_some_and(|f| f.pareto))
                    .map(|r| r.label.as_str())
                    .collect();
                table.push_str(&format!(
                    "recommended: none: {} (the front: {})\n",
                    self.not_recommended.as_deref().unwrap_or("no setting fits"),
                    names.join("; ")
                ));
            }
        }
        table
    }
}
