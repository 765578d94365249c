//! Request bodies as capped byte streams.
//!
//! A push can be gigabytes: bodies are never collected, only read through an
//! [`AsyncRead`] that decodes `Content-Encoding: gzip` on the fly (git compresses
//! small requests) and fails with [`TooLarge`] once the decoded size passes the cap,
//! or with [`Stalled`] once the client has sent nothing for the stall timeout (a push
//! that stops sending must not keep its git child alive as long as the socket).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_compression::tokio::bufread::GzipDecoder;
use axum::body::Body;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

/// A request body being read.
pub(crate) type BodyReader = Pin<Box<dyn AsyncRead + Send>>;

/// The body exceeded the configured cap.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit of {limit} bytes")]
pub(crate) struct TooLarge {
    /// The cap, in bytes.
    pub(crate) limit: u64,
}

/// The client sent no byte of the body for the stall timeout.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled: no bytes for {after:?}")]
pub(crate) struct Stalled {
    /// The stall timeout.
    pub(crate) after: Duration,
}

/// Whether `error` is a [`Stalled`].
pub(crate) fn stalled(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Stalled>().is_some())
}

/// If `error` is a [`TooLarge`], the cap it reports.
pub(crate) fn too_large(error: &io::Error) -> Option<u64> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLarge>())
        .map(|too_large| too_large.limit)
}

/// Reads `body`, gunzipping it when `gzip`, failing once more than `limit` decoded
/// bytes have been read, or once a read waited `stall` for the client's next byte.
pub(crate) fn request_reader(body: Body, gzip: bool, limit: u64, stall: Duration) -> BodyReader {
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = tokio::io::BufReader::new(Progress {
        inner: Box::pin(StreamReader::new(stream)),
        stall,
        deadline: Box::pin(tokio::time::sleep(stall)),
        waiting: false,
    });
    let inner: BodyReader = if gzip {
        let mut decoder = GzipDecoder::new(reader);
        decoder.multiple_members(true);
        Box::pin(decoder)
    } else {
        Box::pin(reader)
    };
    Box::pin(Limited {
        inner,
        read: 0,
        limit,
    })
}

/// Fails a read that waited `stall` for bytes. The clock runs only while a read waits:
/// time spent while git is slow to take what we read does not count against the client.
struct Progress {
    inner: BodyReader,
    stall: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
}

impl AsyncRead for Progress {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.stall;
            self.deadline.as_mut().reset(deadline);
        }
        match self.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let after = self.stall;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        Stalled { after },
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

struct Limited {
    inner: BodyReader,
    read: u64,
    limit: u64,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read += (buf.filled().len() - before) as u64;
            if self.read > self.limit {
                // An error must not come with data: take back what this read added.
                buf.set_filled(before);
                let limit = self.limit;
                return Poll::Ready(Err(io::Error::other(TooLarge { limit })));
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::StreamExt as _;
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn read_all(body: Vec<u8>, gzip: bool, limit: u64) -> io::Result<Vec<u8>> {
        let mut reader = request_reader(Body::from(body), gzip, limit, Duration::from_secs(60));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn plain_and_gzip_bodies_decode() {
        let data = b"0000 hello pack".repeat(1000);
        assert_eq!(
            read_all(data.clone(), false, 1 << 20).await.expect("plain"),
            data
        );
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&data).expect("gzip");
        let gz = encoder.finish().expect("gzip");
        assert!(gz.len() < data.len());
        assert_eq!(read_all(gz, true, 1 << 20).await.expect("gunzip"), data);
        assert!(read_all(b"not gzip".to_vec(), true, 1 << 20).await.is_err());
    }

    #[tokio::test]
    async fn cap_applies_to_decoded_bytes() {
        let data = vec![0u8; 100_000];
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&data).expect("gzip");
        let bomb = encoder.finish().expect("gzip");
        let error = read_all(bomb, true, 10_000).await.expect_err("capped");
        assert_eq!(too_large(&error), Some(10_000));
        assert!(
            read_all(data.clone(), false, 100_000).await.is_ok(),
            "exactly the cap is fine"
        );
        let error = read_all(data, false, 99_999).await.expect_err("capped");
        assert_eq!(too_large(&error), Some(99_999));
    }

    #[tokio::test]
    async fn a_body_that_stops_sending_fails_after_the_stall_timeout() {
        let first: Result<bytes::Bytes, io::Error> = Ok(bytes::Bytes::from_static(b"0000PACK"));
        let stream = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
        let body = Body::from_stream(stream);
        let mut reader = request_reader(body, false, 1 << 20, Duration::from_millis(200));
        let mut buf = [0u8; 8];
        reader.read_exact(&mut buf).await.expect("first bytes");
        let error = reader.read(&mut buf).await.expect_err("stalled");
        assert!(stalled(&error), "{error}");
    }
}
