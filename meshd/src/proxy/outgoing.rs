//! The request as its attempts send it: the head, and a body meshd can send again when a retry
//! needs it.
//!
//! A request that may be retried has its body read into memory first, up to
//! [`RETRY_BUFFER`] bytes (Envoy buffers up to its connection buffer limit, 1 MiB by default;
//! meshd keeps 64 KiB per request, the size of its connection buffers). A longer body is sent
//! once, streaming what was read and then the rest: its request is never retried once bytes
//! went upstream (`retry_or_shadow_abandoned`). Requests without a retry policy stream as
//! before, never buffered.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame};
use http_body_util::BodyExt;

use super::timeout::Progress;
use crate::body::RequestBody;

/// The largest request body buffered so that a retry can send it again.
pub const RETRY_BUFFER: usize = 64 * 1024;

/// A request for one or more attempts.
pub struct Outgoing {
    /// Every attempt writes this head (borrowed: never copied).
    head: http::request::Parts,
    /// The whole body, read: every attempt sends it.
    data: Option<(Vec<Bytes>, Option<HeaderMap>)>,
    /// A body that streams (not buffered, or longer than [`RETRY_BUFFER`]): one attempt only.
    stream: Option<RequestBody>,
    progress: Arc<Progress>,
}

/// Why a body could not be read (the client's framing, or the client leaving): the progress
/// says which.
#[derive(Debug)]
pub struct BodyFailed;

impl Outgoing {
    /// A request whose body streams: one attempt, or several when it has no body.
    pub fn streaming(parts: http::request::Parts, body: RequestBody) -> Outgoing {
        let progress = body.progress().clone();
        let head = parts;
        if body.is_end_stream() {
            return Outgoing {
                head,
                data: Some((Vec::new(), None)),
                stream: None,
                progress,
            };
        }
        Outgoing {
            head,
            data: None,
            stream: Some(body),
            progress,
        }
    }

    /// Reads the body into memory (up to [`RETRY_BUFFER`]) so that retries can send it again.
    /// Longer bodies keep what was read and stream the rest (one attempt).
    pub async fn buffered(
        parts: http::request::Parts,
        mut body: RequestBody,
    ) -> Result<Outgoing, BodyFailed> {
        let head = parts;
        let progress = body.progress().clone();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        let mut trailers = None;
        // Frames are read through the RequestBody, so bytes, activity and errors are reported
        // to the progress once, here.
        loop {
            if size > RETRY_BUFFER {
                // Too long to keep: send what was read (trailers included, when the body
                // ended with them), then the rest, once.
                let mut frames: VecDeque<Frame<Bytes>> =
                    chunks.into_iter().map(Frame::data).collect();
                frames.extend(trailers.map(Frame::trailers));
                let (inner, progress) = body.into_parts();
                return Ok(Outgoing {
                    head,
                    data: None,
                    stream: Some(RequestBody::replay(frames, inner, progress.clone())),
                    progress,
                });
            }
            if body.is_end_stream() {
                break;
            }
            match body.frame().await {
                None => break,
                Some(Err(_)) => return Err(BodyFailed),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => {
                        size += d.len();
                        chunks.push(d);
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(t);
                        }
                    }
                },
            }
        }
        Ok(Outgoing {
            head,
            data: Some((chunks, trailers)),
            stream: None,
            progress,
        })
    }

    /// Whether another attempt can send this request again.
    pub fn replayable(&self) -> bool {
        self.data.is_some()
    }

    /// The head every attempt sends.
    pub fn head(&self) -> &http::request::Parts {
        &self.head
    }

    /// The body for the next attempt; `None` when a streaming body was already sent.
    pub fn body(&mut self) -> Option<RequestBody> {
        let body = match (&self.data, self.stream.take()) {
            (Some((chunks, trailers)), _) => {
                let mut frames: VecDeque<Frame<Bytes>> =
                    chunks.iter().cloned().map(Frame::data).collect();
                if let Some(t) = trailers {
                    frames.push_back(Frame::trailers(t.clone()));
                }
                RequestBody::replay(frames, None, self.progress.clone())
            }
            (None, Some(stream)) => stream,
            (None, None) => return None,
        };
        Some(body)
    }
}
