//! Files: path traversal, local files reached without a traversal, remote file inclusion and
//! XML external entities.

use super::{rule, Class, Rule, Scope};

/// A DOCTYPE naming a public DTD anywhere but the well-known ones of XHTML, SVG and Apple
/// property lists (`http://www.w3.org/...`, `http://www.apple.com/...`), which parsers resolve
/// from a catalogue if at all: any other system literal makes the parser fetch it.
const PUBLIC_DTD: &str = r#"<!doctype\s+[\w:.-]+\s+public\s+["'][^"']*["']\s*["'](?:[^h]|h[^t]|ht[^t]|htt[^p]|http[^s:]|https?:[^/]|https?:/[^/]|https?://(?:[^w]|w[^w]|ww[^w]|www[^.]|www\.(?:[^wa]|w(?:[^3]|3[^.]|3\.[^o]|3\.o[^r]|3\.or[^g]|3\.org[^/])|a(?:[^p]|p[^p]|pp[^l]|ppl[^e]|pple[^.]|pple\.[^c]|pple\.c[^o]|pple\.co[^m]|pple\.com[^/]))))"#;

pub fn rules() -> Vec<Rule> {
    vec![
        rule(
            930100,
            Class::Traversal,
            1,
            "dot-dot segment, Tomcat path parameters and NTFS stream names",
            r"(?:^|[/\\=:;,\s'])\.{2,}[/\\]|[/\\]\.{2,}(?:[/\\]|$)|\.\.;[^/\\\s]*[/\\]|::\$(?:data|index_allocation)\b|:\$data\b",
        ),
        rule(
            930110,
            Class::Traversal,
            1,
            "absolute system path",
            r"(?:^|[^\w.])/?(?:etc(?:/+\.)*/+(?:passwd|shadow|gshadow|master\.passwd|hosts|group|issue|motd|profile|bashrc|environment|resolv\.conf|fstab|mtab|hostname|inittab|sudoers|crontab|login\.defs|exports|security/|ssh/|ssl/|nginx/|apache2?/|httpd/|mysql/|php\d*/|redis/|postgresql/|my\.cnf|shells|aliases)|proc(?:/+\.)*/+(?:self|thread-self|\d+)/|proc/(?:version|cpuinfo|meminfo|mounts|net/|sched_debug|kallsyms|kcore|partitions|config\.gz|cmdline)|var/(?:log|lib/mysql|spool/cron|mail)/|var/lib/php\d*/sess|dev/fd/\d|sys/(?:class|kernel|devices|firmware)/|etc/+kubernetes/|config/master\.key\b|storage/logs/laravel\.log\b|root/\.|home/[^/]+/\.(?:ssh|bash|aws|config|docker|kube|git|npm|pg)|boot\.ini|win\.ini|system\.ini|windows[/\\](?:win\.ini|system32|system\.ini|repair|panther|debug)|system32[/\\]|winnt[/\\]|inetpub[/\\]|web-inf[/\\]|meta-inf[/\\]|\.htaccess|\.htpasswd|web\.config|\.env\b|wp-config\.php|\.git[/\\]|\.svn[/\\]|\.hg[/\\]|\.ds_store|\.bash_history|\.mysql_history|\.npmrc|\.pgpass|\.netrc|\.dockercfg|id_(?:rsa|dsa|ecdsa|ed25519)\b|authorized_keys|applicationhost\.config)|[/\\](?:php\.ini|httpd\.conf|server\.xml|tomcat-users\.xml|localsettings\.php|configuration\.php|settings\.php|config\.inc\.php|database\.yml|credentials\.xml|known_hosts)\b",
        ),
        rule(
            930120,
            Class::Traversal,
            1,
            "Windows drive path to system folders",
            r"\b[a-z]:[/\\]+(?:windows|winnt|boot\.ini|inetpub|programdata|xampp|wamp|documents and settings|users[/\\][^/\\]+[/\\](?:ntuser|appdata))",
        ),
        rule(930130, Class::Traversal, 1, "file: URL", r"\bfile\s*:\s*/{2,}|^\s*file\s*:\s*/[\w.~-]"),
        rule(
            930140,
            Class::Traversal,
            1,
            "secrets and runtime paths",
            r"/(?:var/)?run/secrets/|(?:^\s*|/)\.(?:kube/config|aws/credentials|docker/config)|/\.git/(?:config|head)",
        ),
        rule(
            930150,
            Class::Traversal,
            1,
            "dots and slashes still escaped after decoding",
            r"(?:0x2e|\\x2e|\\u002e|\.){2}(?:0x2f|0x5c|\\x2f|\\x5c|\\u002f|\\u005c)|(?:0x2e|\\x2e|\\u002e){2}",
        ),
        rule(
            930160,
            Class::Traversal,
            1,
            "XML external entity or XInclude",
            format!(
                r"<!entity\s+(?:%\s*)?[\w.:-]+\s+(?:system|public)\b|<!entity\s+%|<!doctype\s+[\w:.-]+\s+system\s|{PUBLIC_DTD}|<xi\s*:\s*include\b|xmlns\s*:\s*xi\s*=|\bw3\.org/2001/xinclude\b"
            ),
        ),
        rule(
            931110,
            Class::Rfi,
            1,
            "URL to an include file, or cut off by ?, # or NUL (the included suffix is dropped)",
            r#"(?:https?|ftps?|smb)\s*:\s*[/\\]+[^\s?#]+\?+\s*$|(?:https?|ftps?|smb)\s*:\s*[/\\]+[^\s?#]+\.(?:txt|gif|jpe?g|png|php\d?|phtml|inc|jsp|jspx|aspx?|sh|pl|py|cgi|xml|html?)(?:\?+(?:$|[./#"'\s])|#\s*$)|(?:https?|ftps?|smb)\s*:\s*[/\\]+[^\s?#]+\.(?:txt|inc)\s*$|^\s*//[a-z0-9.-]+\.[a-z]{2,}/[^\s]*\?\s*$|^\s*//\d{1,3}(?:\.\d{1,3}){3}/|\bftps?\s*:\s*[/\\]+[^\s]+\.(?:php\d?|phtml|txt|jsp|aspx?|inc)\b|\b(?:h\s+t\s*t\s*p|ht\s+tp|htt\s+p)s?\s*:\s*[/\\]{1,2}"#,
        ),
        rule(
            931120,
            Class::Rfi,
            1,
            "PHP include of a URL or wrapper",
            r#"\b(?:include|require)(?:_once)?\s*\(?\s*['"]?\s*(?:https?|ftps?|php|data|expect|phar|zip)://"#,
        ),
        rule(
            931130,
            Class::Rfi,
            1,
            "remote web shell",
            r"(?:https?|ftps?)://[^\s]*/(?:[\w.-]*[._-])?(?:shell|c99|r57|c100|wso|b374k|backdoor|webshell|phpshell|cmdshell)[\w.-]*\.(?:txt|php\d?|phtml|jsp|aspx?|sh|pl|py|cgi)\b",
        ),
        rule(
            931140,
            Class::Rfi,
            1,
            "UNC path to another host",
            r"^\s*\\\\[\w.$@-]+\\[\w.$-]",
        ),
        rule(
            931100,
            Class::Rfi,
            1,
            "URL to an IP literal in a parameter",
            r"^\s*(?:https?|ftps?|file|smb|sftp)://(?:[^@/\s]*@)?\[?(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:.]*)\]?(?:[:/?#]|$)",
        )
        .scope(Scope::ValuesOnly),
        rule(
            931125,
            Class::Rfi,
            1,
            "remote URL ending in `?` (the rest of an include path cut off)",
            r"^\s*(?:https?|ftps?)://\S+\?+\s*$",
        )
        .scope(Scope::ValuesOnly),
        rule(
            931150,
            Class::Rfi,
            1,
            "remote script or text file in a parameter that names a file to include (checked as `name=value`)",
            // A page or document URL there is ordinary (`{"page": "https://example.com/pricing"}`);
            // what an include loader runs is a script or text file, or a URL whose tail is cut
            // off by an empty query, a fragment or a NUL.
            format!(
                r"^(?:{INCLUDE_PARAMS})=\s*(?:(?:https?|ftps?|smb|sftp):)?(?://|\\\\)[^/\\\s]+[/\\](?:[^?#\s]*\.(?:php\d?|phtml|phar|inc|txt|jsp|jspx|asp|aspx|ashx|sh|pl|py|cgi|rb|exe|dll|war|jar)(?:$|[?#\s.])|[^\s]*(?:[?#]|[?&][\w.]*=|%00|\x00)\s*$)"
            ),
        )
        // Only `check_include` writes `name=value`: no scope needed.
        .scope(Scope::Everywhere),
        rule(
            931155,
            Class::Rfi,
            1,
            "any remote URL in a PHP global or CMS path setting (checked as `name=value`)",
            format!(r"^(?:{INCLUDE_GLOBALS})=\s*(?:(?:https?|ftps?|smb|sftp):)?//"),
        ),
    ]
}

/// Settings that old PHP applications read from request parameters when `register_globals` or
/// an `extract($_REQUEST)` lets them, and that name the directory includes are read from.
pub const INCLUDE_GLOBALS: &str = r"_server\[document_root\]|mosconfig_absolute_path|_conf\[path\]|gallery_basedir|path\[docroot\]|appserv_root|config\[root_dir\]|globals\[\w+\]";

/// Parameter names that PHP, JSP and CGI applications pass to include or template loaders.
pub const INCLUDE_PARAMS: &str = "base_dir|basedir|base_path|include_path|inc_path|root_dir|rootdir|abspath|file|filename|page|include|inc|template|tpl|path|dir|folder|doc|document|root|load|module|mod|view|layout|style|theme|lang|language|conf|config|require|pg";
