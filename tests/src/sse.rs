//! A server-sent events client for tests: reads `event:`/`id:`/`data:` messages off a
//! streaming HTTP answer, skipping heartbeat comments.

use std::time::Duration;

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    pub event: String,
    pub id: Option<String>,
    pub data: serde_json::Value,
}

/// An open stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Opens `url` with a bearer token (and `Last-Event-ID` when given); the answer must be
    /// a 200 `text/event-stream`, else the status and body are returned as the error.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, (reqwest::StatusCode, String)> {
        let mut request = http.get(url).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("the query API answers");
        let status = response.status();
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status != reqwest::StatusCode::OK || !is_stream {
            return Err((status, response.text().await.unwrap_or_default()));
        }
        Ok(SseStream {
            response,
            buffer: String::new(),
        })
    }

    /// The next message within `timeout`; `None` when none came (or the stream ended).
    pub async fn next_within(&mut self, timeout: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(message) = self.take_message() {
                return Some(message);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first complete message in the buffer that is not a comment.
    fn take_message(&mut self) -> Option<SseMessage> {
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            if let Some(message) = parse_block(&block) {
                return Some(message);
            }
        }
        None
    }
}

fn parse_block(block: &str) -> Option<SseMessage> {
    let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return None; // a heartbeat comment
    }
    let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
    Some(SseMessage { event, id, data })
}
