//! The detection rules: each has an id, a class, a paranoia level and a description, and is a
//! regular expression over the normalised text (the `regex` crate matches in linear time, so
//! no input can make matching blow up). Rules of one class compile into one `RegexSet`.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Sqli,
    Xss,
    Traversal,
    Cmdi,
    Crlf,
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
}

impl Class {
    /// The classes a policy's own rule may use.
    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "sqli" => Class::Sqli,
            "xss" => Class::Xss,
            "traversal" => Class::Traversal,
            "cmdi" => Class::Cmdi,
            "crlf" => Class::Crlf,
            _ => return None,
        })
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
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim()
                .to_string()
        })
}

const CMDS: &str = r"(?:cat|ls|id|whoami|uname|ping|curl|wget|nc|ncat|netcat|bash|sh|zsh|powershell|cmd|nslookup|dig|sleep|rm|chmod|chown|python3?|perl|php|ruby|busybox|telnet|ifconfig|ipconfig|netstat|ps|head|tail|more|type|dir|echo|env|printenv|set|whoami\.exe|net|systeminfo|tasklist|certutil|base64|xxd|touch|mkfifo|sudo|su|kill|reboot|shutdown|crontab|awk|sed|find|grep|hostname)";

/// The built-in rules. Paranoia 1 is on by default; 2 adds rules with more false positives.
pub fn builtin() -> Vec<Rule> {
    let r = |id, class, paranoia, description: &'static str, pattern: &'static str| Rule {
        id,
        class,
        paranoia,
        description: Cow::Borrowed(description),
        pattern: Cow::Borrowed(pattern),
    };
    vec![
        r(
            942100,
            Class::Sqli,
            1,
            "SQL tautology after a quote",
            r#"['"`]\s*\)?\s*(?:or|and|xor|\|\||&&)\s*\(?\s*['"`]?[\w\s]*['"`]?\s*(?:=|<>|!=|<|>|like\b|is\b|regexp\b)"#,
        ),
        r(
            942110,
            Class::Sqli,
            1,
            "tautology without a leading quote",
            r#"\b(?:or|and|xor)\s+\(?\s*(?:'[^']{0,20}'|"[^"]{0,20}"|-?\d+)\s*(?:=|<>|!=|\blike\b)\s*\(?\s*(?:'|"|-?\d)"#,
        ),
        r(
            942120,
            Class::Sqli,
            1,
            "boolean tautology",
            r#"['"\d)]\s*(?:or|and)\s+(?:true|false|not\s)"#,
        ),
        r(
            942130,
            Class::Sqli,
            1,
            "UNION SELECT",
            r"\bunion\b(?:\s+(?:all|distinct))?\s*\(?\s*select\b",
        ),
        r(
            942140,
            Class::Sqli,
            1,
            "stacked query",
            r"['\d)]?\s*;\s*(?:drop|delete|insert|update|create|alter|truncate|exec(?:ute)?|shutdown|declare|select|grant|revoke|waitfor)\b",
        ),
        r(
            942150,
            Class::Sqli,
            1,
            "time-based function",
            r"\b(?:sleep|pg_sleep|benchmark|dbms_lock\.sleep|randomblob)\s*\(|\bwaitfor\s+(?:delay|time)\b",
        ),
        r(
            942160,
            Class::Sqli,
            1,
            "error-based function",
            r"\b(?:extractvalue|updatexml|xmltype|exp|floor\s*\(\s*rand|geometrycollection|multipoint|polygon|linestring|name_const|gtid_subset|json_keys)\s*\(",
        ),
        r(
            942170,
            Class::Sqli,
            1,
            "quote then comment",
            r#"['"]\s*\)*\s*(?:--|#|;\s*--|/\*)"#,
        ),
        r(
            942180,
            Class::Sqli,
            1,
            "schema and file functions",
            r"\binformation_schema\b|\bsysobjects\b|\bsys\.tables\b|@@version\b|\bload_file\s*\(|\binto\s+(?:out|dump)file\b|\bpg_catalog\b|\bsqlite_master\b|\bxp_cmdshell\b",
        ),
        r(
            942190,
            Class::Sqli,
            1,
            "ORDER BY / GROUP BY / HAVING probe",
            r"['\d)]\s*(?:(?:order|group)\s+by\s+[\w,]+\s*(?:--|#|$|having)|having\s+\d+\s*=\s*\d+)",
        ),
        r(
            942230,
            Class::Sqli,
            1,
            "blind probes and subqueries",
            r"\b(?:and|or)\s+\(?\s*(?:ascii|substring|substr|mid|length|ord|if|exists)\s*\(|\(\s*select\b[^)]{0,120}\bfrom\b|\bcase\s+when\b[^;]{0,80}\bthen\b|\b(?:rlike|regexp)\s*\(\s*select\b",
        ),
        r(
            942240,
            Class::Sqli,
            1,
            "UNION split by comments",
            r"\bunion\b[\s\S]{0,40}\bselect\b[\s\S]{0,60}(?:,|\bfrom\b|--|#|@@|\bnull\b|\d)",
        ),
        r(
            942200,
            Class::Sqli,
            1,
            "select from after a quote",
            r"['\d)]\s*(?:and|or|union|;)?\s*\(?\s*select\b.{0,80}\bfrom\b",
        ),
        r(
            942210,
            Class::Sqli,
            1,
            "char/concat obfuscation",
            r"\b(?:char|chr|concat|concat_ws|unhex|hex)\s*\(\s*(?:\d|0x|')",
        ),
        r(
            942220,
            Class::Sqli,
            2,
            "SELECT ... FROM anywhere",
            r"\bselect\b.{1,120}\bfrom\b",
        ),
        r(941100, Class::Xss, 1, "script tag", r"<\s*/?\s*script\b"),
        r(
            941110,
            Class::Xss,
            1,
            "event handler attribute",
            r#"(?:^|[\s"'/;<>])on(?:error|load|click|dblclick|mouse\w+|focus\w*|blur|change|submit|key\w+|toggle|begin|end|animation\w*|transition\w*|pointer\w+|input|select|drag\w*|drop|wheel|touch\w+|show|scroll|resize|unload|beforeunload|hashchange|message|paste|copy|cut|contextmenu|auxclick|play|playing|pause|ended|canplay\w*|loadstart|progress|readystatechange|search|invalid|reset|start|finish|bounce)\s*="#,
        ),
        r(
            941120,
            Class::Xss,
            1,
            "javascript: or vbscript: URL",
            r"(?:java|vb|live)\s*script\s*:[^\s]",
        ),
        r(
            941130,
            Class::Xss,
            1,
            "dangerous HTML element",
            r"<\s*(?:iframe|frame|svg|object|embed|math|base|meta|applet|isindex|xml|xss|form|link|style|template|portal)\b",
        ),
        r(
            941140,
            Class::Xss,
            1,
            "element with an event handler or a script URL",
            r#"<\s*(?:img|body|video|audio|details|input|marquee|a|div|span|image|source|button|select|textarea|keygen|table|td|p|b|i)\b[^>]*\bon\w+\s*=|<[^>]*\b(?:src|href|background|formaction|srcdoc|xlink:href|action|data)\s*=\s*["'`]?\s*(?:javascript|vbscript|data)\s*:"#,
        ),
        r(
            941150,
            Class::Xss,
            1,
            "data URI with markup",
            r"data\s*:\s*(?:text/html|image/svg\+xml|application/x?html|text/javascript)",
        ),
        r(
            941160,
            Class::Xss,
            1,
            "script sinks",
            r"\b(?:alert|prompt|confirm|eval|settimeout|setinterval|function)\s*(?:\(|`)|document\s*\.\s*(?:cookie|domain|write|location)|window\s*\.\s*location|string\s*\.\s*fromcharcode|\.innerhtml\s*=",
        ),
        r(
            941170,
            Class::Xss,
            1,
            "template injection",
            r"\{\{\s*[\w.]+\s*[*+/-]\s*[\w.]+\s*\}\}|\$\{\s*\d+\s*[*+/-]\s*\d+\s*\}|#\{\s*\d+\s*[*+/-]\s*\d+\s*\}|<%=?|[*@#$]\{\s*\d+\s*[*+/-]\s*\d+\s*\}|@\(\s*\d+\s*[*+/-]\s*\d+\s*\)|\{\{[^}]*(?:constructor|__proto__|__class__|config|self\.|request\.|\bmro\b|subclasses|__import__|popen|\bexec\b|\beval\b|lipsum|cycler|joiner)[^}]*\}\}|\{%\s*(?:import|include|set|for|if)\b",
        ),
        r(
            941180,
            Class::Xss,
            1,
            "expression() and -moz-binding",
            r"expression\s*\(|-moz-binding|behavior\s*:\s*url",
        ),
        r(
            930100,
            Class::Traversal,
            1,
            "dot-dot segment",
            r"(?:^|[/\\=:;,\s'])\.{2,}[/\\]|[/\\]\.{2,}(?:[/\\]|$)",
        ),
        r(
            930110,
            Class::Traversal,
            1,
            "absolute system path",
            r"(?:^|[^\w.])/?(?:etc/(?:passwd|shadow|hosts|group|issue|sudoers|crontab|ssh/|ssl/|nginx/|apache2?/|mysql/)|proc/(?:self|\d+)/|var/log/|root/\.|home/[^/]+/\.ssh|boot\.ini|windows[/\\](?:win\.ini|system32|system\.ini)|winnt[/\\]|inetpub[/\\]|\.htaccess|\.htpasswd|web\.config|\.env\b|wp-config\.php)",
        ),
        r(
            930120,
            Class::Traversal,
            1,
            "Windows drive path to system folders",
            r"\b[a-z]:[/\\]+(?:windows|winnt|boot\.ini|inetpub|users[/\\][^/\\]+[/\\](?:ntuser|appdata))",
        ),
        r(930130, Class::Traversal, 1, "file:// URL", r"\bfile\s*:\s*/{2,}"),
        r(
            930140,
            Class::Traversal,
            1,
            "secrets and runtime paths",
            r"/(?:var/)?run/secrets/|/\.kube/config|/\.aws/credentials|/\.git/(?:config|head)|/\.docker/config",
        ),
        r(932100, Class::Cmdi, 1, "separator then command", *CMD_SEPARATED),
        r(932110, Class::Cmdi, 1, "command substitution", *CMD_SUBST),
        r(
            932120,
            Class::Cmdi,
            1,
            "shell evasion and interpreters",
            r"\$\{?ifs\}?|\$\{?path:|/bin/(?:ba|z|da)?sh\b|/usr/bin/\w|\bcmd(?:\.exe)?\s*/c\b|\bpowershell(?:\.exe)?\b|\(\)\s*\{\s*:\s*;\s*\}|\$\{\s*jndi\s*:|\$\{[^}]{0,20}\$\{|\$\{(?:lower|upper|env|sys|date|java|base64|::-)[:}]|<!--\s*#\s*exec|\bnc\s+-[el]|\b(?:curl|wget)\s+(?:-\w+\s+)*(?:https?|ftp)://",
        ),
        r(
            921100,
            Class::Crlf,
            1,
            "CRLF then header",
            r"\n\s*(?:set-cookie|location|content-[\w-]+|refresh|link|x-[\w-]+|access-control-[\w-]+|cache-control|transfer-encoding|host|cookie|authorization|status|http/\d)\s*:|\n\s*http/\d|\n\s*\n\s*<",
        ),
        r(
            921110,
            Class::Crlf,
            1,
            "escaped CRLF left after decoding",
            r"(?:%0d|%0a|\\r|\\n)+\s*(?:set-cookie|location|content-[\w-]+|x-[\w-]+|refresh)\s*:",
        ),
    ]
}

static CMD_SUBST: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    let s = format!(r"\$\(\s*(?:/(?:usr/)?s?bin/)?{CMDS}\b|`\s*(?:/(?:usr/)?s?bin/)?{CMDS}\b[^`]{{0,200}}`");
    Box::leak(s.into_boxed_str())
});

static CMD_SEPARATED: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    let s = format!(r"(?:;|\|\|?|&&?|\n)\s*(?:/(?:usr/)?s?bin/)?{CMDS}(?:\.exe)?(?:\s|$|;|\||&|<|>|#)");
    Box::leak(s.into_boxed_str())
});
