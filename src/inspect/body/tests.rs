//! The body inspection's unit tests: codings, charsets, sniffing and each structure.

use super::*;
use crate::inspect::Class;
use std::io::Write;

fn insp() -> Inspector {
    Inspector::new(1, &[])
}

fn found(ct: Option<&str>, body: &[u8]) -> Option<Finding> {
    inspect_body(&insp(), ct, body, &[], Limits::default())
}

const SQLI: &str = "1' OR '1'='1";

#[test]
fn codings_are_case_insensitive_and_unknown_ones_refused() {
    let one = |v: &str| content_codings(std::iter::once(v.as_bytes()));
    assert_eq!(one("GZIP"), Ok(vec![Coding::Gzip]));
    assert_eq!(one(" x-gzip "), Ok(vec![Coding::Gzip]));
    assert_eq!(one("Deflate, identity"), Ok(vec![Coding::Deflate]));
    assert_eq!(one("gzip, gzip"), Ok(vec![Coding::Gzip, Coding::Gzip]));
    assert_eq!(one("identity"), Ok(vec![]));
    for bad in ["br", "zstd", "x-foo", "gzip, br", "gzip,gzip,gzip", "compress"] {
        assert_eq!(one(bad), Err(BodyError::UnsupportedEncoding), "{bad}");
    }
    // Two header lines are one list.
    let two = [b"gzip".as_slice(), b"br".as_slice()];
    assert_eq!(content_codings(two.into_iter()), Err(BodyError::UnsupportedEncoding));
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_zlib_and_raw_deflate_decode_within_the_bound() {
    let plain = SQLI.as_bytes();
    assert_eq!(decode(&gzip(plain), &[Coding::Gzip], 100).unwrap(), plain);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(plain).unwrap();
    assert_eq!(decode(&z.finish().unwrap(), &[Coding::Deflate], 100).unwrap(), plain);
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    d.write_all(plain).unwrap();
    assert_eq!(decode(&d.finish().unwrap(), &[Coding::Deflate], 100).unwrap(), plain);
    // Stacked: gzip applied twice, undone twice.
    assert_eq!(
        decode(&gzip(&gzip(plain)), &[Coding::Gzip, Coding::Gzip], 100).unwrap(),
        plain
    );
    // Concatenated gzip members are one body (as Go's gzip reader reads them).
    let two = [gzip(b"a=1&"), gzip(b"q=2")].concat();
    assert_eq!(decode(&two, &[Coding::Gzip], 100).unwrap(), b"a=1&q=2");
    // A bomb: 10 MB of zeros in about 10 KB stops at the bound.
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 20_000);
    let (partial, e) = decode(&bomb, &[Coding::Gzip], 1 << 20).unwrap_err();
    assert_eq!(e, BodyError::TooLarge);
    assert_eq!(partial.len(), (1 << 20) + 1);
    assert_eq!(decode(plain, &[Coding::Gzip], 100).unwrap_err().1, BodyError::Corrupt);
    let mut cut = gzip(plain);
    cut.truncate(cut.len() - 4);
    assert_eq!(decode(&cut, &[Coding::Gzip], 100).unwrap_err().1, BodyError::Corrupt);
}

#[test]
fn charsets_are_parsed_and_the_non_ascii_ones_refused() {
    assert_eq!(charset("application/json"), Ok(Charset::AsciiCompatible));
    assert_eq!(
        charset("application/json; Charset=\"UTF-8\""),
        Ok(Charset::AsciiCompatible)
    );
    assert_eq!(charset("text/plain; charset=iso-8859-1"), Ok(Charset::AsciiCompatible));
    assert_eq!(charset("application/json; charset=utf-16"), Ok(Charset::Utf16Le));
    assert_eq!(charset("application/json;charset=UTF-16BE"), Ok(Charset::Utf16Be));
    for bad in [
        "application/x-www-form-urlencoded; charset=ibm037",
        "text/html; charset=utf-7",
        "application/json; charset=utf-8; charset=utf-16",
    ] {
        assert_eq!(charset(bad), Err(BodyError::UnsupportedCharset), "{bad}");
    }
    // The same value twice is not ambiguous.
    assert!(charset("a/b; charset=utf-8; charset=utf-8").is_ok());
    // `xcharset=` is another parameter.
    assert_eq!(charset("a/b; xcharset=ibm037"), Ok(Charset::AsciiCompatible));
}

fn utf16le(s: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xff, 0xfe] } else { Vec::new() };
    out.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

#[test]
fn utf16_and_utf32_bodies_are_transcoded() {
    let doc = r#"{"q":"1' OR '1'='1"}"#;
    for body in [utf16le(doc, true), utf16le(doc, false)] {
        assert_eq!(to_text(&body, Charset::AsciiCompatible), doc);
        let f = found(Some("application/json"), &body).unwrap();
        assert_eq!((f.location, f.class), ("json", Class::Sqli));
    }
    let be: Vec<u8> = doc.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    assert_eq!(to_text(&be, Charset::Utf16Be), doc);
    let le32: Vec<u8> = doc.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
    assert_eq!(to_text(&le32, Charset::AsciiCompatible), doc);
    // A declared UTF-16 text without a BOM that starts with a non-ASCII character.
    let s = "é<script>alert(1)</script>";
    assert_eq!(to_text(&utf16le(s, false), Charset::Utf16Le), s);
    assert!(found(Some("text/plain; charset=utf-16"), &utf16le(s, false)).is_some());
    // Declared UTF-16 or UTF-32, sent as plain ASCII: read as sent too (PHP, Go and Werkzeug
    // ignore the charset parameter).
    for ct in [
        "application/x-www-form-urlencoded; charset=utf-16",
        "application/json; charset=utf-32",
        "text/plain; charset=utf-16be",
    ] {
        let sent = if ct.contains("json") {
            r#"{"q":"4 union select secret from vault"}"#
        } else {
            "q=%3Cscript%3Eprint(1)%3C%2Fscript%3E&x=1"
        };
        assert!(found(Some(ct), sent.as_bytes()).is_some(), "{ct}");
        assert!(found(Some(ct), b"q=hello&x=1").is_none(), "{ct}");
    }
    // UTF-8 with a BOM.
    let bom = [b"\xef\xbb\xbf".as_slice(), doc.as_bytes()].concat();
    assert_eq!(found(Some("application/json"), &bom).unwrap().location, "json");
}

#[test]
fn bodies_are_inspected_as_what_they_are_not_what_they_say() {
    let json = br#"  {"user":{"q":"1' OR '1'='1"}}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/octet-stream"),
        Some("image/png"),
    ] {
        assert_eq!(found(ct, json).unwrap().location, "json", "{ct:?}");
        assert_eq!(found(ct, b"a=1&q=1%27%20OR%20%271%27%3D%271").unwrap().location, "form");
        let xml = b"<?xml version=\"1.0\"?><r><q>1' OR '1'='1</q></r>";
        assert!(found(ct, xml).is_some(), "{ct:?}");
        assert!(found(ct, SQLI.as_bytes()).is_some(), "raw text, {ct:?}");
    }
    // Declared as a form, sent as JSON: walked as JSON too.
    let f = found(Some("application/x-www-form-urlencoded"), json).unwrap();
    assert_eq!(f.class, Class::Sqli);
    // Declared a form, but no form: raw text too (the pairs split the payload apart).
    assert_eq!(
        found(Some("application/x-www-form-urlencoded"), SQLI.as_bytes())
            .unwrap()
            .location,
        "body"
    );
    // Declared JSON, sent as a form.
    assert!(found(Some("application/json"), b"q=1%27%20OR%20%271%27%3D%271").is_some());
    // Benign bodies of each kind pass.
    for (ct, body) in [
        (Some("text/plain"), r#"{"name":"O'Brien","n":[1,2]}"#),
        (None, "name=O%27Brien&city=New+York"),
        (Some("application/xml"), "<a href=\"/x\">Rock and roll</a>"),
        (Some("text/plain"), "just a note: meet at 5, bring the O'Brien file"),
    ] {
        assert!(found(ct, body.as_bytes()).is_none(), "{ct:?} {body}");
    }
}

/// Property: over random documents (JSON nested at random with random keys, XML with text,
/// CDATA, attributes and comments, forms, multipart), a payload placed in any value is found
/// wherever it sits and however the body is labelled, and random bytes of the same pieces
/// never panic.
#[test]
fn property_a_payload_anywhere_in_a_random_document_is_found() {
    use rand::{Rng, SeedableRng};
    const WORDS: &[&str] = &[
        "a",
        "O'Brien",
        "rock & roll",
        "é",
        "50% off",
        "x y",
        "\\n",
        "1",
        "select",
    ];
    const PAYLOAD: &str = "1' OR '1'='1";
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let insp = insp();
    fn json(rng: &mut impl Rng, depth: u32, payload: &mut Option<&str>) -> String {
        let pick = |rng: &mut dyn rand::RngCore| WORDS[rng.gen_range(0..WORDS.len())].to_string();
        let leaf = |rng: &mut dyn rand::RngCore, payload: &mut Option<&str>| {
            if rng.gen_range(0..4) == 0 {
                if let Some(p) = payload.take() {
                    return serde_json::to_string(p).unwrap();
                }
            }
            serde_json::to_string(&pick(rng)).unwrap()
        };
        if depth == 0 || rng.gen_range(0..3) == 0 {
            return match rng.gen_range(0..4) {
                0 => rng.gen_range(0..1000).to_string(),
                1 => "null".into(),
                _ => leaf(rng, payload),
            };
        }
        let n = rng.gen_range(0..4);
        if rng.gen() {
            let items: Vec<String> = (0..n).map(|_| json(rng, depth - 1, payload)).collect();
            format!("[{}]", items.join(","))
        } else {
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let k = serde_json::to_string(&pick(rng)).unwrap();
                    format!("{k}:{}", json(rng, depth - 1, payload))
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
    for case in 0..3000 {
        // JSON: the payload goes in at some leaf, or is appended as the last one.
        let mut slot = Some(PAYLOAD);
        let depth = rng.gen_range(1..8);
        let doc = json(&mut rng, depth, &mut slot);
        let doc = if slot.is_some() {
            format!("[{doc},{}]", serde_json::to_string(PAYLOAD).unwrap())
        } else {
            doc
        };
        for ct in [Some("application/json"), Some("text/plain"), None] {
            let f = inspect_body(&insp, ct, doc.as_bytes(), &[], Limits::default());
            assert!(f.is_some(), "case {case} {ct:?}: {doc}");
        }
        // The same kind of document without it passes: the finding is the payload's.
        let clean = json(&mut rng, depth, &mut None);
        let f = inspect_body(
            &insp,
            Some("application/json"),
            clean.as_bytes(),
            &[],
            Limits::default(),
        );
        assert!(f.is_none(), "case {case}: {clean}: {f:?}");
        // XML: text, CDATA, an attribute, or split by a comment.
        let escaped = PAYLOAD.replace('\'', "&apos;");
        let inner = match rng.gen_range(0..4) {
            0 => format!("<v>{escaped}</v>"),
            1 => format!("<v><![CDATA[{PAYLOAD}]]></v>"),
            2 => format!("<v a=\"{escaped}\"/>"),
            _ => format!("<v>1' OR<!-- c --> '1'='1</v>"),
        };
        let noise: String = (0..rng.gen_range(0..4))
            .map(|i| {
                format!(
                    "<n{i}>{}</n{i}>",
                    WORDS[i % WORDS.len()].replace('&', "&amp;").replace('\'', "&apos;")
                )
            })
            .collect();
        let xml = format!("<?xml version=\"1.0\"?><r>{noise}{inner}{noise}</r>");
        assert!(
            inspect_body(&insp, Some("application/xml"), xml.as_bytes(), &[], Limits::default()).is_some(),
            "case {case}: {xml}"
        );
        // Random bytes of the same pieces: any verdict, never a panic.
        const BITS: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "\\u0027",
            "<",
            ">",
            "<![CDATA[",
            "]]>",
            "<!--",
            "-->",
            "&",
            "=",
            "--b\r\n",
            "\r\n\r\n",
            "%",
            "é",
            "\u{0}",
        ];
        let junk: String = (0..rng.gen_range(0..40))
            .map(|_| BITS[rng.gen_range(0..BITS.len())])
            .collect();
        for ct in [
            "application/json",
            "application/xml",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "text/plain",
        ] {
            let _ = inspect_body(
                &insp,
                Some(ct),
                junk.as_bytes(),
                &[],
                Limits {
                    max_values: 5,
                    max_depth: 3,
                },
            );
        }
    }
}

#[test]
fn inspection_work_is_bounded_by_values_and_depth() {
    let limits = Limits {
        max_values: 100,
        max_depth: 8,
    };
    let run = |ct: &str, body: &str| inspect_body(&insp(), Some(ct), body.as_bytes(), &[], limits).map(|f| f.rule_id);
    // 100 values are inspected; the 101st is refused (it would have been inspected too).
    let json = |n: usize| format!("[{}]", vec!["\"o'k\""; n].join(","));
    assert_eq!(run("application/json", &json(100)), None);
    assert_eq!(
        run("application/json", &json(101)),
        Some(crate::inspect::TOO_MANY_VALUES)
    );
    let form = |n: usize| vec!["a=b"; n].join("&");
    assert_eq!(run("application/x-www-form-urlencoded", &form(100)), None);
    assert_eq!(
        run("application/x-www-form-urlencoded", &form(101)),
        Some(crate::inspect::TOO_MANY_VALUES)
    );
    let xml = |n: usize| format!("<r>{}</r>", "<v>x</v>".repeat(n));
    assert_eq!(run("application/xml", &xml(80)), None);
    assert_eq!(run("application/xml", &xml(101)), Some(crate::inspect::TOO_MANY_VALUES));
    // Nesting: 8 levels are walked, a 9th is refused, before serde_json's own limit (128)
    // would end the walk without a verdict.
    let nest = |n: usize| format!("{}\"x\"{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(run("application/json", &nest(8)), None);
    assert_eq!(run("application/json", &nest(9)), Some(crate::inspect::TOO_DEEP));
    let deep = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    assert_eq!(run("application/json", &deep(9)), Some(crate::inspect::TOO_DEEP));
    assert_eq!(
        inspect_body(
            &insp(),
            Some("application/json"),
            nest(200).as_bytes(),
            &[],
            Limits::default()
        )
        .map(|f| f.rule_id),
        Some(crate::inspect::TOO_DEEP)
    );
}

#[test]
fn json_escapes_hide_nothing() {
    let escaped = r#"{"q":"\u0027 OR \u00271\u0027=\u00271"}"#;
    assert_eq!(found(Some("text/plain"), escaped.as_bytes()).unwrap().location, "json");
    // A doubled comma before the payload: serde_json stops there, lenient parsers read on;
    // the raw text is inspected with the escapes decoded.
    let lenient = r#"{"a":1,,"q":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#;
    let f = found(Some("application/json"), lenient.as_bytes()).unwrap();
    assert_eq!((f.location, f.class), ("body", Class::Xss));
}

#[test]
fn xml_text_attributes_cdata_and_doctype() {
    let xml = |b: &str| found(Some("application/xml"), b.as_bytes());
    assert_eq!(xml("<r><q a=\"1\">1' OR '1'='1</q></r>").unwrap().location, "xml");
    assert!(xml("<r q='&lt;script&gt;alert(1)&lt;/script&gt;'/>").is_some());
    assert!(xml("<r><![CDATA[<script>alert(1)</script>]]></r>").is_some());
    assert!(xml("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>").is_some());
    // Comments are not data; element names in declared XML are structure.
    assert!(xml("<r><!-- ' or 1=1 --><name>O'Brien</name></r>").is_none());
    // Unterminated: the tail is inspected as text.
    assert!(xml("<r><q>ok</q><a b='1' OR '1'='1").is_some());
    // Adjacent CDATA sections and text around a comment are one value to the parser.
    assert!(xml("<r><q><![CDATA[1' OR]]><![CDATA[ '1'='1]]></q></r>").is_some());
    assert!(xml("<r><q>1' OR<!-- x --> '1'='1</q></r>").is_some());
    // Values of different elements are not joined.
    assert!(xml("<r><q>1' OR</q><q> '1'='1</q></r>").is_none());
    // Element names that pick a class to build (XStream).
    assert!(xml("<map><java.lang.ProcessBuilder><command/></java.lang.ProcessBuilder></map>").is_some());
    assert!(xml("<feed><media.title>Rock</media.title></feed>").is_none());
    // The same markup sent as text/plain may be rendered as HTML: raw text too.
    assert!(found(Some("text/plain"), b"<script>alert(1)</script>").is_some());
    assert!(found(None, b"<svg onload=alert(1)>").is_some());
}

/// Internal entities split a keyword across declarations (`&u;on &s;ect`): parsers expand them,
/// so the value is also checked expanded; in text and in attributes. Expansion is one level
/// and bounded, so nested declarations (billion laughs) cost no more than their size.
/// Values made only of letters, digits and `_` skip matching unless they hold a keyword: the
/// keywords include what such a value can be an attack as (a `__proto__` key, a pickle in
/// base64).
#[test]
fn bare_word_values_that_are_attacks_are_inspected() {
    let ct = Some("application/json");
    for doc in [
        r#"{"__proto__":{"isAdmin":true}}"#,
        r#"{"\u005f_proto__":{"x":1}}"#,
        r#"{"data":"Y29zCnN5c3RlbQooUyd0cnVlJwp0Ui4"}"#,
    ] {
        assert!(found(ct, doc.as_bytes()).is_some(), "{doc}");
    }
    assert!(found(ct, br#"{"stage":"prototype","name":"gas valve"}"#).is_none());
}

#[test]
fn xml_internal_entities_are_expanded_for_inspection() {
    let ct = Some("application/xml");
    let split = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY s "sel"><!ENTITY u 'uni'>]><r><id>4 &u;on &s;ect secret from vault</id></r>"#;
    assert_eq!(found(ct, split.as_bytes()).map(|f| f.class), Some(Class::Sqli));
    let attr = r#"<!DOCTYPE r [<!ENTITY h "onerror">]><r><img src="x" alt="&lt;img src=x &h;=print(1)&gt;"/></r>"#;
    assert!(found(ct, attr.as_bytes()).is_some());
    // Harmless entities stay harmless.
    let nested = r#"<!DOCTYPE r [<!ENTITY a "sel"><!ENTITY b "&a;ect">]><r>4 union &b; secret from vault</r>"#;
    assert_eq!(found(ct, nested.as_bytes()).map(|f| f.class), Some(Class::Sqli));
    let fine = r#"<!DOCTYPE r [<!ENTITY co "Acme Ltd">]><r><name>&co; and partners</name></r>"#;
    assert!(found(ct, fine.as_bytes()).is_none());
    let mut laughs = String::from("<!DOCTYPE r [<!ENTITY a0 \"ha\">");
    for i in 1..10 {
        laughs.push_str(&format!(
            "<!ENTITY a{i} \"&a{p};&a{p};&a{p};&a{p};&a{p};&a{p};&a{p};&a{p};&a{p};&a{p};\">",
            p = i - 1
        ));
    }
    laughs.push_str("]><r>&a9;</r>");
    assert!(found(ct, laughs.as_bytes()).is_none());
}

#[test]
fn multipart_part_headers_lf_line_ends_and_boundaries() {
    let ct = "multipart/form-data; boundary=XyZ";
    let body = |disp: &str, content: &str, eol: &str| {
        format!("--XyZ{eol}Content-Disposition: form-data; {disp}{eol}Content-Type: text/plain{eol}{eol}{content}{eol}--XyZ--{eol}")
    };
    let mp = |ct: &str, b: &str| found(Some(ct), b.as_bytes());
    assert!(mp(ct, &body("name=\"a\"", "hello", "\r\n")).is_none());
    assert_eq!(mp(ct, &body("name=\"a\"", SQLI, "\r\n")).unwrap().location, "multipart");
    // LF-only line ends.
    assert_eq!(mp(ct, &body("name=\"a\"", SQLI, "\n")).unwrap().location, "multipart");
    // Part headers: filename, name (quoted, with an escaped quote and a semicolon), type.
    let f = mp(
        ct,
        &body("name=\"f\"; filename=\"<script>alert(1)</script>.png\"", "x", "\r\n"),
    )
    .unwrap();
    assert_eq!((f.location, f.class), ("multipart_header", Class::Xss));
    let f = mp(ct, &body("name=\"a\\\"; x' OR '1'='1\"", "x", "\r\n")).unwrap();
    assert_eq!((f.location, f.class), ("multipart_header", Class::Sqli));
    assert!(mp(
        ct,
        &body("filename*=UTF-8''%3Cscript%3Ealert(1)%3C%2Fscript%3E", "x", "\n")
    )
    .is_some());
    let typed = "--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Type: text/html\"><script>alert(1)</script>\r\n\r\nx\r\n--XyZ--\r\n";
    assert!(mp(ct, typed).is_some());
    // No boundary in the header (or a wrong one, or the type says JSON): the first line's.
    for ct in [
        "multipart/form-data",
        "multipart/form-data; boundary=other",
        "application/json",
    ] {
        assert_eq!(
            mp(ct, &body("name=\"a\"", SQLI, "\r\n")).unwrap().location,
            "multipart",
            "{ct}"
        );
    }
    // The boundary string inside a line is content, not a delimiter: what follows it on that
    // line is part of the value and inspected.
    for hidden in [
        "hello--XyZ<svg onload=print()>",
        "7--XyZ' union select secret from vault-- -",
    ] {
        assert!(mp(ct, &body("name=\"a\"", hidden, "\r\n")).is_some(), "{hidden}");
    }
    // Two boundary parameters: both are tried.
    let two = "multipart/form-data; boundary=other; boundary=XyZ";
    assert!(mp(two, &format!("preamble\r\n{}", body("name=\"a\"", SQLI, "\r\n"))).is_some());
    // A part with no blank line is all content.
    assert!(mp(ct, &format!("--XyZ\r\n{SQLI}\r\n--XyZ--")).is_some());
    // An excluded part name skips its content, not its headers.
    let ex = ["a".to_string()];
    assert!(inspect_body(
        &insp(),
        Some(ct),
        body("name=\"a\"", SQLI, "\r\n").as_bytes(),
        &ex,
        Limits::default()
    )
    .is_none());
}

#[test]
fn param_values_sees_every_occurrence() {
    assert_eq!(
        param_values("multipart/form-data; BOUNDARY=\"a;b\"", "boundary"),
        vec!["a;b"]
    );
    assert_eq!(
        param_values("multipart/form-data; x=\"boundary=fake\"; boundary=real", "boundary"),
        vec!["fake", "real"]
    );
    assert_eq!(param_values("a/b;boundary=x", "boundary"), vec!["x"]);
    assert!(param_values("a/b; myboundary=x", "boundary").is_empty());
}

/// Property (the `multipart` fuzz target's, 3,000 mutated bodies and `Content-Type`
/// values): multipart inspection never panics, every boundary read from the value is a
/// piece of it, and a well-formed body's SQL injection is found whatever the boundary.
#[test]
fn property_multipart_never_panics_and_finds_what_it_holds() {
    let insp = insp();
    let mut rng = crate::prop::rng(2046);
    let limits = Limits {
        max_values: 64,
        max_depth: 8,
    };
    for case in 0..3_000 {
        let boundary = format!("b{}", crate::prop::text(&mut rng, b"xyz-'()+_,./:=?", 12));
        let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
        let name = crate::prop::text(&mut rng, b"ab\";=", 6).replace('"', "");
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\nhello\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n1' OR '1'='1\r\n--{boundary}--\r\n"
        );
        assert!(
            inspect_body(&insp, Some(&ct), body.as_bytes(), &[], limits).is_some(),
            "case {case}: {ct} {body:?}"
        );
        let ct = crate::prop::mutate_str(&mut rng, &ct, b"\";= \\");
        for b in param_values(&ct, "boundary") {
            assert!(ct.contains(b), "case {case}: {b:?} in {ct:?}");
        }
        let body = crate::prop::mutate(&mut rng, body.as_bytes(), b"\r\n-\";=:");
        let _ = inspect_body(&insp, Some(&ct), &body, &[], limits);
    }
}
