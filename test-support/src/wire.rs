//! The remote-write 1.0 messages as an independent decoder (prost) reads
//! them, so that every test checks the hand-rolled encoder against the same
//! reading of the spec.

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// `a="x",b="y"` with labels in wire order, for messages and keys.
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        labels.join(",")
    }
}

/// A request body as it goes over HTTP: a snappy block around the protobuf.
/// The error says which of the two layers is broken.
pub fn decode_snappy(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// One `(labels, value bits, timestamp)` per sample, labels in wire order as
/// `name=value` joined by `,`, so tests can compare and search plain strings
/// and tell NaN payloads (stale markers) apart by their bits.
pub fn flatten(request: &WriteRequest) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    for series in &request.timeseries {
        let labels: Vec<String> = series
            .labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        let labels = labels.join(",");
        for sample in &series.samples {
            out.push((labels.clone(), sample.value.to_bits(), sample.timestamp));
        }
    }
    out
}
