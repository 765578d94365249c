//! Who a request is from.
//!
//! Every per-client limit reads the client's address through [`client_addr`], the one
//! place that will learn to trust a proxy's `X-Forwarded-For`; today it is the TCP
//! peer. Connection caps count TCP peers before any request is read.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Extensions;

/// The client address of a request (its extensions carry the connection's peer), or
/// `None` when the request came without one (in-process tests): then only the
/// server-wide limits apply.
pub fn client_addr(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}
