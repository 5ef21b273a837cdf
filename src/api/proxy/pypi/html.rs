//! Just enough HTML for PEP 503 pages: the `<a>` elements of an upstream's
//! page (attributes and text, entities decoded), and escaping for what
//! Larder writes. Hand-written rather than a full HTML5 parser crate: a
//! simple page is a flat list of anchors, this reads any upstream's
//! spelling of them (quotes or none, any case, comments, stray `<`) in
//! linear time, and every value it returns is escaped again on the way
//! out, so a hostile page cannot inject markup through it.

/// One `<a …>text</a>` of a page.
#[derive(Debug, Default, PartialEq)]
pub struct Anchor {
    /// Attribute names lowercased, values decoded; in page order.
    pub attrs: Vec<(String, String)>,
    /// The text, tags inside it dropped, decoded and trimmed.
    pub text: String,
}

impl Anchor {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every anchor of `page`, in order.
pub fn anchors(page: &str) -> Vec<Anchor> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let name_len = rest[1..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len() - 1);
        let name = &rest[1..1 + name_len];
        rest = &rest[1 + name_len..];
        if name.eq_ignore_ascii_case("a") && !rest.is_empty() {
            let (attrs, after) = attributes(rest);
            let (text, after) = inner_text(after);
            out.push(Anchor { attrs, text });
            rest = after;
        } else if name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style") {
            rest = skip_past_close(rest, name);
        }
    }
    out
}

/// The attributes of a start tag, from just after its name, and what
/// follows its `>`.
fn attributes(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut attrs = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        match s.chars().next() {
            None => return (attrs, s),
            Some('>') => return (attrs, &s[1..]),
            _ => {}
        }
        let end = s
            .find(|c: char| c.is_ascii_whitespace() || matches!(c, '=' | '>' | '/'))
            .unwrap_or(s.len())
            .max(1);
        let name = s[..end].to_ascii_lowercase();
        s = s[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        let mut value = String::new();
        if let Some(v) = s.strip_prefix('=') {
            let v = v.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let (raw, after) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => match v[1..].find(q) {
                    Some(close) => (&v[1..1 + close], &v[close + 2..]),
                    None => (&v[1..], ""),
                },
                _ => {
                    let end = v
                        .find(|c: char| c.is_ascii_whitespace() || c == '>')
                        .unwrap_or(v.len());
                    (&v[..end], &v[end..])
                }
            };
            value = decode(raw);
            s = after;
        }
        attrs.push((name, value));
    }
}

/// The text up to the anchor's `</a>` (tags inside it dropped), and what
/// follows. Without a close tag, the text ends at the next tag.
fn inner_text(s: &str) -> (String, &str) {
    // Searched only as far as the next anchor: linear over the page, even
    // one whose anchors are never closed.
    let reach = find_ci(s, "<a").unwrap_or(s.len());
    let close = find_ci(&s[..reach], "</a")
        .filter(|&i| !s[i + 3..].starts_with(|c: char| c.is_ascii_alphanumeric()));
    let (body, after) = match close {
        Some(i) => (&s[..i], s[i..].find('>').map_or("", |e| &s[i + e + 1..])),
        None => {
            let end = s.find('<').unwrap_or(s.len());
            (&s[..end], &s[end..])
        }
    };
    let mut text = String::new();
    let mut rest = body;
    while let Some(at) = rest.find('<') {
        text.push_str(&rest[..at]);
        rest = rest[at..].find('>').map_or("", |e| &rest[at + e + 1..]);
    }
    text.push_str(rest);
    (decode(&text).trim().to_owned(), after)
}

fn skip_past_close<'a>(s: &'a str, name: &str) -> &'a str {
    let needle = format!("</{name}");
    match find_ci(s, &needle) {
        Some(i) => &s[i + needle.len()..],
        None => "",
    }
}

/// The first ASCII-case-insensitive match of `needle` (ASCII) in `hay`.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    hay.as_bytes()
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
}

/// Decodes character references: the named ones a simple page uses, and
/// numeric ones; anything else stays as written.
pub fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let semi = rest.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                _ => {
                    let n = entity.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code).unwrap_or('\u{fffd}')
                }
            };
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` safe as HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anchors_however_they_are_spelled() {
        let page = r#"<!DOCTYPE html><html><body><!-- <a href="no">x</a> -->
<h1>Links</h1>
<A HREF="../../p/a-1.0.tar.gz#sha256=ab" data-requires-python="&gt;=3.8">a-1.0.tar.gz</A><br/>
<a href='b.whl' data-yanked data-core-metadata=sha256=cd>
  <span>b.whl</span></a>
<a href=c.zip>c&amp;d.zip
<script>var s = "<a href='evil'>";</script>
"#;
        let a = anchors(page);
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(a[0].attr("href"), Some("../../p/a-1.0.tar.gz#sha256=ab"));
        assert_eq!(a[0].attr("data-requires-python"), Some(">=3.8"));
        assert_eq!(a[0].text, "a-1.0.tar.gz");
        assert_eq!(a[1].attr("data-yanked"), Some(""));
        assert_eq!(a[1].attr("data-core-metadata"), Some("sha256=cd"));
        assert_eq!(a[1].text, "b.whl");
        assert_eq!(a[2].attr("href"), Some("c.zip"));
        assert_eq!(a[2].text, "c&d.zip");
    }

    #[test]
    fn survives_truncated_and_odd_input() {
        for page in [
            "<",
            "<a",
            "<a href=\"x",
            "<a href=x>t",
            "&",
            "&#xffffffff;",
            "<a =>",
            "<!--",
        ] {
            let _ = anchors(page);
        }
        assert_eq!(decode("&#60;&#x3e;&bogus;&"), "<>&bogus;&");
        assert_eq!(decode("&#xffffffff;"), "\u{fffd}");
    }

    #[test]
    fn a_large_page_of_unclosed_anchors_reads_in_linear_time() {
        let page = "<a href=x.whl>x.whl ".repeat(200_000);
        let started = std::time::Instant::now();
        assert_eq!(anchors(&page).len(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn escapes_everything_that_could_end_a_value() {
        assert_eq!(escape(r#"<"'&>"#), "&lt;&quot;&#39;&amp;&gt;");
    }
}
