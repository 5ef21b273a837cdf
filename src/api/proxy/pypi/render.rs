//! The simple index as Larder serves it: PEP 503 HTML or PEP 691 JSON,
//! whichever the client's `Accept` prefers, with every file URL pointing
//! at Larder (relative to the page, so a path prefix in front of Larder
//! keeps working). Everything taken from the upstream is escaped.

use serde_json::{json, Map, Value};

use super::html::escape;
use super::index::{File, Hashes};

pub const JSON: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML: &str = "application/vnd.pypi.simple.v1+html";
pub const TEXT_HTML: &str = "text/html";

/// The representation a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Json,
    Html,
    /// Plain `text/html` (what older clients and browsers ask for).
    LegacyHtml,
}

impl Form {
    pub fn content_type(self) -> &'static str {
        match self {
            Form::Json => JSON,
            Form::Html => HTML,
            Form::LegacyHtml => "text/html; charset=utf-8",
        }
    }

    /// The form `Accept` ranks highest (PEP 691 negotiation; the first
    /// listed wins a tie); HTML when it names none Larder serves.
    pub fn negotiate(accept: Option<&str>) -> Form {
        let mut best = (Form::LegacyHtml, -1.0f32);
        for item in accept.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let form = match media.as_str() {
                JSON | "application/vnd.pypi.simple.latest+json" => Form::Json,
                HTML | "application/vnd.pypi.simple.latest+html" => Form::Html,
                TEXT_HTML | "text/*" | "*/*" => Form::LegacyHtml,
                _ => continue,
            };
            if q > 0.0 && q > best.1 {
                best = (form, q);
            }
        }
        best.0
    }
}

/// Where Larder serves a file, relative to its project's page
/// (`/pypi/<ns>/simple/<project>/`).
fn file_href(project: &str, f: &File) -> String {
    format!("../../files/{project}/{}", f.filename)
}

fn hash_attr(h: &Hashes) -> String {
    match h.get("sha256") {
        Some(hex) => format!("sha256={hex}"),
        None => h
            .iter()
            .next()
            .map_or_else(|| "true".to_owned(), |(a, x)| format!("{a}={x}")),
    }
}

pub fn project_page(form: Form, project: &str, files: &[File]) -> Vec<u8> {
    if form == Form::Json {
        let files: Vec<Value> = files.iter().map(|f| json_file(project, f)).collect();
        let doc = json!({"meta": {"api-version": "1.0"}, "name": project, "files": files});
        return serde_json::to_vec(&doc).unwrap_or_default();
    }
    let p = escape(project);
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n\
         <title>Links for {p}</title>\n</head>\n<body>\n<h1>Links for {p}</h1>\n"
    );
    for f in files {
        out.push_str(&format!(
            "<a href=\"{}#sha256={}\"",
            escape(&file_href(project, f)),
            escape(f.sha256())
        ));
        if let Some(rp) = &f.requires_python {
            out.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
        }
        if let Some(reason) = &f.yanked {
            out.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
        }
        if let Some(h) = &f.core_metadata {
            let v = escape(&hash_attr(h));
            out.push_str(&format!(
                " data-core-metadata=\"{v}\" data-dist-info-metadata=\"{v}\""
            ));
        }
        out.push_str(&format!(">{}</a><br/>\n", escape(&f.filename)));
    }
    out.push_str("</body>\n</html>\n");
    out.into_bytes()
}

fn json_file(project: &str, f: &File) -> Value {
    let mut o = Map::new();
    o.insert("filename".into(), f.filename.clone().into());
    o.insert("url".into(), file_href(project, f).into());
    o.insert("hashes".into(), json!(f.hashes));
    if let Some(rp) = &f.requires_python {
        o.insert("requires-python".into(), rp.clone().into());
    }
    let yanked = match &f.yanked {
        None => Value::Bool(false),
        Some(r) if r.is_empty() => Value::Bool(true),
        Some(r) => r.clone().into(),
    };
    o.insert("yanked".into(), yanked);
    if let Some(h) = &f.core_metadata {
        let v = if h.is_empty() {
            Value::Bool(true)
        } else {
            json!(h)
        };
        o.insert("core-metadata".into(), v.clone());
        o.insert("dist-info-metadata".into(), v);
    }
    Value::Object(o)
}

/// The root page: every project, linking to its page under this one.
pub fn project_list(form: Form, projects: &[String]) -> Vec<u8> {
    if form == Form::Json {
        let list: Vec<Value> = projects.iter().map(|p| json!({ "name": p })).collect();
        let doc = json!({"meta": {"api-version": "1.0"}, "projects": list});
        return serde_json::to_vec(&doc).unwrap_or_default();
    }
    let mut out = String::from(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n\
         <title>Simple index</title>\n</head>\n<body>\n",
    );
    for p in projects {
        let p = escape(p);
        out.push_str(&format!("<a href=\"{p}/\">{p}</a><br/>\n"));
    }
    out.push_str("</body>\n</html>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_as_pep_691_says() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(Form::negotiate(Some(pip)), Form::Json);
        assert_eq!(Form::negotiate(None), Form::LegacyHtml);
        assert_eq!(Form::negotiate(Some("*/*")), Form::LegacyHtml);
        assert_eq!(Form::negotiate(Some(HTML)), Form::Html);
        let prefer_html = "application/vnd.pypi.simple.v1+json;q=0.5, text/html";
        assert_eq!(Form::negotiate(Some(prefer_html)), Form::LegacyHtml);
        assert_eq!(Form::negotiate(Some("application/json")), Form::LegacyHtml);
        assert_eq!(
            Form::negotiate(Some(&format!("{JSON};q=0"))),
            Form::LegacyHtml
        );
    }
}
