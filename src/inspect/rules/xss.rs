//! Cross-site scripting and template injection: tags, event handlers, script URLs, SVG and MathML, script sinks.

use super::{rule, Class, Rule, Scope};

pub fn rules() -> Vec<Rule> {
    vec![
        rule(941100, Class::Xss, 1, "script tag", r"<\s*/?\s*script\b"),
        rule(
            941110,
            Class::Xss,
            1,
            "event handler attribute",
            r#"(?:^|[\s"'/;<>])on(?:error|load|click|dblclick|mouse\w+|focus\w*|blur|change|submit|key\w+|toggle|begin|end|animation\w*|transition\w*|pointer\w+|input|select|drag\w*|drop|wheel|touch\w+|show|scroll|resize|unload|beforeunload|hashchange|message|paste|copy|cut|contextmenu|auxclick|play|playing|pause|ended|canplay\w*|loadstart|progress|readystatechange|search|invalid|reset|start|finish|bounce)\s*="#,
        ),
        rule(
            941120,
            Class::Xss,
            1,
            "javascript: or vbscript: URL",
            r#"(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e)\s*s\s*c\s*r\s*i\s*p\s*t\s*:(?:[^\s]|\s+(?:[\w$.\[\]'"]+\s*[(\[.=`]|/[/*]))"#,
        ),
        rule(
            941130,
            Class::Xss,
            1,
            "dangerous HTML element",
            r"<\s*(?:iframe|frame|svg|object|embed|math|base|meta|applet|isindex|xml|xss|form|link|style|portal)\b",
        )
        // An uploaded SVG is an <svg>: only scripts and handlers in it count.
        .scope(Scope::NotInFiles),
        rule(
            941140,
            Class::Xss,
            1,
            "element with an event handler or a script URL",
            r#"<\s*(?:img|body|video|audio|details|input|marquee|a|div|span|image|source|button|select|textarea|keygen|table|td|p|b|i)\b[^>]*\bon\w+\s*=|<[^>]*\b(?:src|href|background|formaction|srcdoc|xlink:href|action|data)\s*=\s*["'`]?\s*(?:javascript|vbscript|data)\s*:"#,
        ),
        rule(
            941150,
            Class::Xss,
            1,
            "data URI with markup",
            r"data\s*:\s*(?:text/html|image/svg\+xml|application/x?html|text/javascript)",
        ),
        rule(
            941160,
            Class::Xss,
            1,
            "script sinks",
            r#"\b(?:alert|prompt|confirm|eval|settimeout|setinterval|function)\s*(?:\(|`)|document\s*(?:\.\s*|\[\s*['"`])(?:cookie|domain|write|location)|\bfetch\s*\(\s*['"`](?:https?:)?//|window\s*\.\s*location|string\s*\.\s*fromcharcode|\.innerhtml\s*="#,
        ),
        rule(
            941170,
            Class::Xss,
            1,
            "template injection",
            r"\{\{\s*[\w.]+\s*[*+/-]\s*[\w.]+\s*\}\}|\$\{\s*\d+\s*[*+/-]\s*\d+\s*\}|#\{\s*\d+\s*[*+/-]\s*\d+\s*\}|<%=?|[*@#$]\{\s*\d+\s*[*+/-]\s*\d+\s*\}|@\(\s*\d+\s*[*+/-]\s*\d+\s*\)|\{\{[^}]*(?:constructor|__proto__|__class__|config|self\.|request\.|\bmro\b|subclasses|__import__|popen|\bexec\b|\beval\b|lipsum|cycler|joiner)[^}]*\}\}|\{%\s*(?:import|include|set|extends|macro|from)\b|\{%[^%]*(?:__\w+__|\bpopen\b|\bexec\b|\beval\b|lipsum|cycler|joiner|request\.|config\.|self\.)|\{\{[^}]*(?:__globals__|__builtins__|__init__|__getitem__|\\x5f|\battr\s*\(|get_flashed_messages|url_for\.|\bopen\s*\()|#\{[^}]{0,200}\b(?:require|process|global|child_process|constructor|mainmodule|execsync|spawnsync)\b|\$\{[^}]{0,200}\b(?:runtime|getruntime|processbuilder|getclass|forname|t\(java)\b",
        ),
        rule(
            941180,
            Class::Xss,
            1,
            "expression() and -moz-binding",
            r"expression\s*\(|-moz-binding|behavior\s*:\s*url",
        ),
        rule(
            941190,
            Class::Xss,
            1,
            "any event handler inside a tag",
            r#"<[a-z][^>]*[\s/"'`]on[a-z]{3,}\s*=|<[a-z][\w:-]*(?:\s+[^\s"'=>/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]*))?)*\s+on[a-z]{3,}\s*="#,
        ),
        rule(
            941200,
            Class::Xss,
            1,
            "attribute breakout into an event handler",
            r#"["'`][\s/]*on[a-z]{3,}\s*=\s*\S|["'`]\s+(?:[a-z][\w:-]*(?:=(?:"[^"]*"|'[^']*'|[^\s"'>]*))?\s+){1,3}on[a-z]{3,}\s*=\s*\S"#,
        ),
        rule(
            941210,
            Class::Xss,
            1,
            "breakout of the current element into a new one",
            r#"^\s*["'`]?\s*/?\s*>\s*<\s*/?\s*[a-z!]|</\s*(?:title|textarea|style|script|noscript|template|iframe|xmp|plaintext|select|option)\s*>\s*<"#,
        ),
        rule(
            941220,
            Class::Xss,
            1,
            "script-capable SVG and MathML elements",
            r"<\s*(?:animate|animatetransform|animatemotion|set|use|foreignobject|handler|feimage|maction|annotation-xml|mglyph|malignmark|discard)\b",
        ),
        rule(
            941230,
            Class::Xss,
            1,
            "indirect and parenthesis-free calls",
            r#"\b(?:top|window|self|parent|frames|globalthis|content)\s*\[\s*['"`]|\bconstructor\s*\.\s*constructor\b|\bconstructor\s*\(\s*['"`]|\[\s*['"`]constructor['"`]\s*\]|\b(?:alert|prompt|confirm|eval)\s*(?:\.\s*(?:call|apply|bind)\b|;\s*throw\b)|\bthrow\s*\w*\s*;?\s*onerror\b|\bonerror\s*=\s*(?:alert|eval|prompt|confirm)\b|\b(?:atob|unescape)\s*\(|\bimport\s*\(\s*['"`]?(?:https?:|data:|//)|\blocation\s*(?:\.\s*href\s*)?=\s*['"`]?\s*(?:javascript|data|//|https?:)"#,
        ),
        rule(
            941240,
            Class::Xss,
            1,
            "script URL or import in CSS",
            r#"url\s*\(\s*['"]?\s*(?:javascript|vbscript)\s*:|@import\s+['"]?\s*(?:https?:)?//"#,
        ),
    ]
}
