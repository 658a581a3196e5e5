//! The `wasm32` runtime (browser, Node, edge workers) builds on the shared
//! codec; its `fetch` client and worker handler are not written yet.
