//! One more try for an HTTP request that met a kept-alive connection the other side had
//! already closed.
//!
//! A proxy or server may close an idle kept-alive connection at any moment, even right after
//! a response that advertised keep-alive (some stock forward proxies close every client
//! connection after one response). When the client takes that connection from its pool before
//! the FIN reached it, the request goes into a closed socket and fails with "connection closed
//! before message completed" (or a reset) without a byte of a response. Browsers resend such a
//! request by themselves (which is why the JS client's XHR polling never sees these), and so
//! does this module: once, on a connection opened for the purpose
//! ([`super::net::Net::unpooled_http_client`]), so that another stale connection of the same
//! pool cannot take the retry too. A second failure is a real error.
//!
//! Why resending is acceptable for Engine.IO POSTs, which are not idempotent (a payload
//! delivered twice is two sets of events; RFC 9110 section 9.2.2 allows the automatic retry of
//! such a request only when the client can tell that the first one was never applied): the
//! retry happens only when the connection ended, or was reset, before the response head
//! arrived. A peer that does that to a kept-alive connection closed it while it was idle, and
//! the request met a socket nobody reads any more: it was neither forwarded nor processed.
//! The case left, a server (or the proxy's upstream) that processed the request and then died
//! before a byte of the answer, is one in which the session is gone too: the retried request is
//! then answered `Session ID unknown` instead of being applied twice. The same reasoning covers
//! the GETs (a poll drains the server's queue): a poll the server answered has a response.
//!
//! Limits of what can be seen from here:
//! - reqwest does retry some of these by itself, through hyper-util's pool
//!   (`retry_canceled_requests`): a request handed to a pooled connection that turned out to be
//!   closed before a byte of the request was written. Once the request was written, as in the
//!   measured failures, neither can know whether it was read, and the error reaches us.
//! - reqwest does not say whether the failed connection came from the pool, so a new connection
//!   closed the same way is tried once more too (a proxy dropping requests unseen: one more
//!   request, then the error).
//! - hyper reports a response head cut short like no response at all, so that is tried once
//!   more too; a body cut short is not (the error comes from reading the body, not from
//!   `send`).

use std::error::Error as _;
use std::io;

use super::http::HttpSettings;

/// Whether `error`, returned by `send()`, means that the connection ended before any response
/// arrived, the request unanswered (and, on a kept-alive connection, unread).
pub(crate) fn closed_before_response(error: &reqwest::Error) -> bool {
    // A connection never made, or a response slow to come, are not stale connections.
    if !error.is_request() || error.is_connect() || error.is_timeout() {
        return false;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            // Incomplete: end of stream while waiting for the response head (also after a
            // partial head, which no closing-idle peer sends). Canceled: the connection was
            // found closed before the request was written.
            if hyper.is_incomplete_message() || hyper.is_canceled() {
                return true;
            }
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            // A reset or broken pipe while writing the request or waiting for the head: the
            // socket on the other side was closed, which happens to a connection closed idle.
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

/// Sends the request `build` makes with the session's HTTP client; when the connection turns
/// out to have been closed before any response (see [`closed_before_response`]), sends it once
/// more on a new connection. `build` runs once per try, so a retry gets a fresh URL stamp.
pub(crate) async fn send<F>(
    settings: &HttpSettings,
    build: F,
) -> Result<reqwest::Response, reqwest::Error>
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
{
    let error = match send_with_cookies(settings, &settings.http, &build).await {
        Err(error) if closed_before_response(&error) => error,
        other => return other,
    };
    let Ok(unpooled) = settings.net.unpooled_http_client(settings.connect_timeout) else {
        // Never seen: the pooled client was built from the same settings.
        return Err(error);
    };
    tracing::debug!(
        error = ?error,
        "connection closed before the response: sending the request once more on a new one"
    );
    send_with_cookies(settings, &unpooled, &build).await
}

/// Sends one try with the client's own cookies, and keeps what the response sets: the HTTP
/// client is shared with other clients (`shared.rs`), the cookie jar is not. A `Cookie`
/// header the application set itself is left alone.
async fn send_with_cookies<F>(
    settings: &HttpSettings,
    http: &reqwest::Client,
    build: &F,
) -> Result<reqwest::Response, reqwest::Error>
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
{
    let mut request = build(http).build()?;
    if !request.headers().contains_key(reqwest::header::COOKIE) {
        if let Some(cookies) = settings.net.cookie_header(request.url()) {
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&cookies) {
                request.headers_mut().insert(reqwest::header::COOKIE, value);
            }
        }
    }
    let response = http.execute(request).await?;
    settings.net.store_cookies(
        response.url(),
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter(),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server on 127.0.0.1 that handles each connection with `serve`.
    async fn server<F, Fut>(serve: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        format!("http://{addr}/")
    }

    /// Reads up to the end of a request head.
    async fn read_head(stream: &mut tokio::net::TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// A client for plain `http://` test servers. reqwest builds its TLS configuration even
    /// then, and without a crypto provider of its own (feature `rustls-no-provider`) it needs
    /// one handed over, as the crate's own clients do. ring is always there in tests (the
    /// dev-dependencies enable it), whatever the crate's provider features.
    fn plain_http_client() -> reqwest::Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .expect("an HTTP client")
    }

    async fn send_error(url: &str) -> reqwest::Error {
        plain_http_client()
            .get(url)
            .send()
            .await
            .expect_err("the request fails")
    }

    #[tokio::test]
    async fn a_connection_closed_without_an_answer_is_recognised() {
        let url = server(|mut stream| async move {
            read_head(&mut stream).await;
        })
        .await;
        let error = send_error(&url).await;
        assert!(closed_before_response(&error), "{error:?}");
    }

    #[tokio::test]
    async fn a_reset_connection_is_recognised() {
        let url = server(|mut stream| async move {
            read_head(&mut stream).await;
            let _ = stream.set_zero_linger();
        })
        .await;
        let error = send_error(&url).await;
        assert!(closed_before_response(&error), "{error:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_a_stale_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let error = send_error(&url).await;
        assert!(error.is_connect(), "{error:?}");
        assert!(!closed_before_response(&error), "{error:?}");
    }

    #[tokio::test]
    async fn a_timeout_is_not_a_stale_connection() {
        let url = server(|mut stream| async move {
            read_head(&mut stream).await;
            // Holds the connection open, unanswered, until the client gives up.
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
        })
        .await;
        let error = plain_http_client()
            .get(&url)
            .timeout(Duration::from_millis(100))
            .send()
            .await
            .expect_err("the request times out");
        assert!(!closed_before_response(&error), "{error:?}");
    }

    #[tokio::test]
    async fn a_malformed_answer_is_not_a_stale_connection() {
        let url = server(|mut stream| async move {
            read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
                .await;
        })
        .await;
        let error = send_error(&url).await;
        assert!(!closed_before_response(&error), "{error:?}");
    }

    #[tokio::test]
    async fn the_retry_goes_once_on_a_new_connection() {
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let url = server(move |mut stream| {
            let count = count.clone();
            async move {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                read_head(&mut stream).await;
            }
        })
        .await;
        let net =
            Arc::new(super::super::net::Net::new(&Default::default(), Default::default()).unwrap());
        let endpoint = super::super::url::Endpoint::new(
            &url,
            "/socket.io/",
            &[],
            crate::proto::engineio::EngineVersion::V4,
        )
        .unwrap();
        let settings = HttpSettings {
            http: net.http_client(Duration::from_secs(5)).unwrap(),
            net,
            endpoint: Arc::new(endpoint),
            headers: Default::default(),
            max_response: 1024,
            connect_timeout: Duration::from_secs(5),
        };
        let tries = std::sync::atomic::AtomicUsize::new(0);
        let error = send(&settings, |http| {
            tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            http.get(&url)
        })
        .await
        .expect_err("both tries are closed unanswered");
        assert!(closed_before_response(&error), "{error:?}");
        assert_eq!(tries.into_inner(), 2);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
