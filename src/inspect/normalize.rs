//! Normalisation before matching, one small function per transformation. Attackers encode;
//! rules match the decoded, folded form. Every step is bounded (linear in the input).

/// Maximum rounds of percent-decoding (double and triple encoding are real; more is noise).
pub const MAX_DECODE_ROUNDS: usize = 3;

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// One round of percent-decoding, including IIS `%uXXXX`. `plus` turns `+` into a space (forms).
pub fn percent_decode(input: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|c| hex(*c)),
                input.get(i + 2).and_then(|c| hex(*c)),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) && i + 6 <= input.len() {
                let digits = &input[i + 2..i + 6];
                if digits.iter().all(|c| hex(*c).is_some()) {
                    let code = digits
                        .iter()
                        .fold(0u32, |acc, c| acc * 16 + u32::from(hex(*c).unwrap_or(0)));
                    if let Some(ch) = char::from_u32(code) {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                }
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Decodes until stable or `MAX_DECODE_ROUNDS`.
pub fn decode_repeated(input: &[u8], plus: bool) -> Vec<u8> {
    let mut cur = input.to_vec();
    for round in 0..MAX_DECODE_ROUNDS {
        if !cur.contains(&b'%') && !(plus && round == 0 && cur.contains(&b'+')) {
            break;
        }
        let next = percent_decode(&cur, plus && round == 0);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// HTML character references: named ones attackers use, decimal and hex numeric.
pub fn html_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let end = tail[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1)
            .unwrap_or(tail.len());
        let name = &tail[1..end];
        let decoded = match name.to_ascii_lowercase().as_str() {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "amp" => Some('&'),
            "colon" => Some(':'),
            "tab" => Some('\t'),
            "newline" => Some('\n'),
            "sol" => Some('/'),
            "lpar" => Some('('),
            "rpar" => Some(')'),
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16).ok().and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                let consumed = if tail[end..].starts_with(';') { end + 1 } else { end };
                rest = &tail[consumed..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Full-width and ideographic forms to ASCII (the part of NFKC that evasions use).
pub fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            0x2024 => '.',
            0xFE52 => '.',
            0x2215 | 0x2044 | 0x29F8 => '/',
            0x2216 => '\\',
            0x3002 | 0xFF61 => '.',
            // Circled digits (NFKC reads ①②⑦.⓪.⓪.① as 127.0.0.1).
            0x2460..=0x2468 => char::from_u32(c as u32 - 0x2460 + u32::from(b'1')).unwrap_or(c),
            0x24EA => '0',
            0xFE68 | 0x29F5 => '\\',
            _ => c,
        })
        .collect()
}

/// `\uXXXX` escapes (with surrogate pairs) decoded, when there are any; a lone surrogate becomes
/// U+FFFD.
pub fn unescape_u(s: &str) -> Option<String> {
    let hex4 = |t: &str| {
        t.get(..4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(unit) = hex4(after) else {
            out.push_str("\\u");
            rest = after;
            continue;
        };
        changed = true;
        rest = &after[4..];
        if (0xd800..0xdc00).contains(&unit) {
            if let Some(low) = rest
                .strip_prefix("\\u")
                .and_then(hex4)
                .filter(|l| (0xdc00..0xe000).contains(l))
            {
                let c = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                rest = &rest[6..];
                continue;
            }
        }
        out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// SQL comments become spaces (`UN/**/ION`), MySQL version comments open up (`/*!50000SELECT*/`).
/// [`join_sql_comments`] is the other reading, for filters that delete comments (`SEL/**/ECT`).
pub fn strip_sql_comments(s: &str) -> String {
    if !s.contains("/*") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        if let Some(bang) = after.strip_prefix('!') {
            let code = bang.trim_start_matches(|c: char| c.is_ascii_digit());
            out.push(' ');
            rest = code;
            continue;
        }
        match after.find("*/") {
            Some(end) => {
                out.push(' ');
                rest = &after[end + 2..];
            }
            None => {
                // An unterminated comment cuts the rest off for an SQL parser, not for a browser
                // or a shell: keep it all, opener included (`admin'/*`, `javascript:/*--><svg`).
                out.push_str(" /*");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("*/", " ")
}

/// Comments removed without a trace (`SEL/**/ECT` becomes `SELECT`), for the SQL rules' second
/// look.
pub fn join_sql_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => {
                // Unterminated: kept, as in `strip_sql_comments`.
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// MySQL's `#` and SQL's `--` comments that a line break ends become one space each; a comment
/// that runs to the end of the text is kept (the quote-then-comment rules look at it).
pub fn strip_sql_line_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let at = match (rest.find('#'), rest.find("--")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        match rest[at..].find('\n') {
            Some(end) => {
                out.push_str(&rest[..at]);
                out.push(' ');
                rest = &rest[at + end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Null bytes out, whitespace runs (tabs, vertical tabs, form feeds) to one space; CR, LF and the
/// other C0 controls are kept as `\n` markers so header-injection and command rules see them.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        match c {
            '\0' => {}
            // Other C0 controls (`%1a`, `%0b` aside) end a line too: shells and header parsers
            // differ on them, so the rules see them where a newline would be.
            // NEL and the Unicode line and paragraph separators end a line as well (a header
            // writer that keeps a character's low byte sends 0x85 or 0x28 ... as the line ends).
            '\r' | '\n' | '\u{1}'..='\u{8}' | '\u{e}'..='\u{1f}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                out.push('\n');
                space = false;
            }
            // U+FFFD stands for a byte that did not decode: MySQL on a latin1 connection reads
            // `\xa0` between keywords as a space (`union\xa0select`), so it separates too.
            c if c.is_whitespace() || c == '\u{b}' || c == '\u{c}' || c == '\u{a0}' || c == '\u{fffd}' => {
                if !space {
                    out.push(' ');
                }
                space = true;
            }
            c => {
                out.push(c);
                space = false;
            }
        }
    }
    out
}

/// The normalised form rules match, and whether the input was malformed (invalid UTF-8 after
/// decoding, which is how overlong encodings such as `%c0%ae` show up).
pub struct Normalized {
    pub text: String,
    pub malformed: bool,
    /// The text with SQL comments deleted rather than turned into spaces, when it had any.
    pub joined: Option<String>,
}

/// Each step runs only when its trigger is present, so a plain value costs one copy: most values
/// of a real request (ids, names, numbers) need none of the transformations.
pub fn normalize(raw: &str, form: bool) -> Normalized {
    let needs_decode = raw.bytes().any(|b| b == b'%' || (form && b == b'+'));
    let (mut text, malformed) = if needs_decode {
        match String::from_utf8(decode_repeated(raw.as_bytes(), form)) {
            Ok(s) => (s, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        }
    } else {
        (raw.to_string(), false)
    };
    if text.contains('&') {
        text = html_entities(&text);
    }
    // `\u0027` left inside a decoded string: GraphQL string literals and JSON parsed a second
    // time by the application decode it.
    if text.contains("\\u") {
        if let Some(t) = unescape_u(&text) {
            text = t;
        }
    }
    if !text.is_ascii() {
        text = fold_width(&text).to_lowercase();
    } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
        text.make_ascii_lowercase();
    }
    let mut joined = None;
    if text.contains("/*") || text.contains("*/") {
        if text.contains("/*") {
            joined = Some(join_sql_comments(&text));
        }
        text = strip_sql_comments(&text);
    }
    // `#` and `--` comments end at a line break (`union#x%0aselect`): the SQL rules' second
    // look also sees the text without them.
    if text.contains('\n') && (text.contains('#') || text.contains("--")) {
        joined = Some(strip_sql_line_comments(joined.as_deref().unwrap_or(&text)));
    }
    let needs_ws = text
        .bytes()
        .zip(text.bytes().skip(1).chain(std::iter::once(b'x')))
        .any(|(a, b)| a < 0x20 || (a == b' ' && b == b' '))
        || !text.is_ascii();
    if needs_ws {
        text = collapse_whitespace(&text);
    }
    Normalized {
        text,
        malformed,
        joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pathological inputs stay linear (the fuzz target in fuzz/ explores this with coverage).
    #[test]
    fn random_and_hostile_inputs_stay_bounded() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet: Vec<char> = "%25%2e/\\'\"<>&#;x/*!*/ \t\n\r\0ＡＢ＜＞uU0123456789abcdef"
            .chars()
            .collect();
        for _ in 0..5_000 {
            let len = (seed % 300) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let n = normalize(&s, true);
            assert!(n.text.len() <= 4 * s.len() + 16, "{s:?}");
        }
        // Decoding is bounded to three rounds, each linear: a nested-encoding bomb shrinks.
        let bomb = "%25".repeat(100_000);
        let n = normalize(&bomb, false);
        assert!(n.text.len() <= bomb.len());
    }

    #[test]
    fn each_step() {
        assert_eq!(decode_repeated(b"%252e%252e%252f", false), b"../");
        assert_eq!(decode_repeated(b"a+b%20c", true), b"a b c");
        assert_eq!(percent_decode(b"%u003cscript", false), b"<script");
        assert_eq!(html_entities("&lt;script&gt;&#x61;&#98;&colon;&amp"), "<script>ab:&");
        assert_eq!(fold_width("＜ｓｃｒｉｐｔ＞"), "<script>");
        assert_eq!(strip_sql_comments("un/**/ion/*!50000select*/"), "un ion select ");
        assert_eq!(strip_sql_comments("admin'/* rest"), "admin' /* rest");
        // What follows an unterminated comment still reaches a browser or a shell.
        assert_eq!(
            strip_sql_comments("javascript:/*--><svg onload=x>"),
            "javascript: /*--><svg onload=x>"
        );
        assert_eq!(
            join_sql_comments("sel/*x*/ect pass/**/word/* cut"),
            "select password/* cut"
        );
        assert_eq!(collapse_whitespace("a\t\t b\0c\r\nd"), "a bc\n\nd");
        assert!(normalize("%c0%ae%c0%ae/", false).malformed);
        assert_eq!(
            normalize("%2527%2520OR%2520%25271%2527%253D%25271", false).text,
            "' or '1'='1"
        );
    }
}
