//! PyPI pull-through at `/pypi/<ns>/simple/`: the simple index in PEP 503
//! HTML or PEP 691 JSON (negotiated on `Accept`), read from
//! `[proxy.pypi] upstream` in either form, with every file URL pointing at
//! Larder's `/pypi/<ns>/files/<project>/<file>`. Pages are metadata
//! (revalidated after `metadata_ttl`, served stale when the upstream is
//! down); wheels, sdists and their PEP 658 `.metadata` are immutable and
//! verified against the page's sha256 before they are stored or served.

mod html;
mod index;
mod name;
mod render;
mod routes;

pub use routes::routes;
