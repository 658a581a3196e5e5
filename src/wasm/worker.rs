//! The worker handler: a Cloudflare Worker's `fetch` answers
//! `/api/v1/ckit/transport/message` and `/stream` with the contract's rules.
