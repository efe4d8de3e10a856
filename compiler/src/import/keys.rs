//! The two spellings of the same Prometheus settings: prometheus.yml's
//! `snake_case` and the Prometheus Operator's `camelCase` (kube-prometheus-stack).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Snake,
    Camel,
}

impl Keys {
    /// `source_labels` as this spelling writes it (`sourceLabels`).
    pub fn name(self, snake: &str) -> String {
        match self {
            Keys::Snake => snake.to_string(),
            Keys::Camel => {
                let mut out = String::new();
                let mut upper = false;
                for c in snake.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.extend(c.to_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn camel_case() {
        assert_eq!(Keys::Camel.name("max_samples_per_send"), "maxSamplesPerSend");
        assert_eq!(Keys::Camel.name("url"), "url");
        assert_eq!(Keys::Snake.name("tls_config"), "tls_config");
    }
}
