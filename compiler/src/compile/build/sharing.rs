//! What an agent's targets share: `scrape_concurrency` and `series_pool`.

use super::super::context::Cx;
use super::super::layers::Unit;
use crate::tree::DocPath;
use outpost_core::plan::Sharing;

/// Where the sharing settings were given, for the memory-budget error.
#[derive(Default)]
pub(in crate::compile) struct SharingPaths {
    pub(in crate::compile) scrape_concurrency: Option<DocPath>,
    pub(in crate::compile) max_size: Option<DocPath>,
}

impl Unit<'_> {
    pub(super) fn sharing(&self, cx: &mut Cx) -> (Sharing, SharingPaths) {
        let mut paths = SharingPaths::default();
        let d = Sharing::DEFAULT;
        let concurrency = match self.pick(|x| x.scrape_concurrency.as_ref(), &["scrape_concurrency"]) {
            Some((n, p)) => {
                paths.scrape_concurrency = Some(p.clone());
                cx.range(*n, 1, 1024, &p, "scrape_concurrency")
                    .unwrap_or(u64::from(d.scrape_concurrency)) as u16
            }
            None => d.scrape_concurrency,
        };
        let max_series = match self.pick(
            |x| x.series_pool.as_ref().and_then(|s| s.max_series.as_ref()),
            &["series_pool", "max_series"],
        ) {
            Some((n, p)) => cx.range(*n, 1, 1 << 31, &p, "max_series").unwrap_or(d.max_series),
            None => d.max_series,
        };
        let max_bytes = match self.pick(
            |x| x.series_pool.as_ref().and_then(|s| s.max_size.as_ref()),
            &["series_pool", "max_size"],
        ) {
            Some((text, p)) => {
                paths.max_size = Some(p.clone());
                cx.size(text, &p).unwrap_or(d.max_series_bytes)
            }
            None => d.max_series_bytes,
        };
        let sharing = Sharing {
            scrape_concurrency: concurrency,
            max_series,
            max_series_bytes: max_bytes,
        };
        (sharing, paths)
    }
}
