//! Azure's Put Block List body:
//! `<?xml …?><BlockList><Latest>id</Latest><Committed>…</Committed>…</BlockList>`.
//! The block ids, in document order, are the order of the blob's bytes. Only
//! what clients send is understood: the three element names Azure defines,
//! character and predefined entity references, nothing else.

/// The block ids of a block list, in order, or why the body is not one.
pub fn parse(body: &str) -> Result<Vec<String>, String> {
    let mut rest = body.trim_start_matches('\u{feff}').trim();
    if let Some(decl) = rest.strip_prefix("<?xml") {
        let end = decl.find("?>").ok_or("unterminated XML declaration")?;
        rest = decl[end + 2..].trim_start();
    }
    rest = rest
        .strip_prefix("<BlockList>")
        .ok_or("the body is not a <BlockList>")?;
    let mut ids = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("</BlockList>") {
            if !after.trim().is_empty() {
                return Err("content after </BlockList>".into());
            }
            return Ok(ids);
        }
        let tag = ["Latest", "Committed", "Uncommitted"]
            .into_iter()
            .find(|t| rest.starts_with(&format!("<{t}>")))
            .ok_or("expected <Latest>, <Committed>, <Uncommitted> or </BlockList>")?;
        rest = &rest[tag.len() + 2..];
        let close = format!("</{tag}>");
        let end = rest
            .find(&close)
            .ok_or_else(|| format!("<{tag}> is not closed"))?;
        ids.push(unescape(rest[..end].trim())?);
        rest = &rest[end + close.len()..];
    }
}

fn unescape(text: &str) -> Result<String, String> {
    if text.contains('<') {
        return Err("a block id contains markup".into());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let semi = rest[at..]
            .find(';')
            .ok_or("unterminated entity reference")?;
        let entity = &rest[at + 1..at + semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => entity.strip_prefix('#').and_then(|d| d.parse().ok()),
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &rest[at + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_keep_document_order() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>\
            <Latest>YjI=</Latest>\n  <Committed>YjE=</Committed><Uncommitted>YjM=</Uncommitted>\
            <Latest>a&#x2B;b&amp;</Latest></BlockList>";
        assert_eq!(parse(body).unwrap(), vec!["YjI=", "YjE=", "YjM=", "a+b&"]);
        assert_eq!(
            parse("<BlockList></BlockList>").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "<BlockList>",
            "<Blocks></Blocks>",
            "<BlockList><Latest>a</BlockList>",
            "<BlockList><Other>a</Other></BlockList>",
            "<BlockList><Latest>a&bogus;</Latest></BlockList>",
            "<BlockList></BlockList>trailing",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
