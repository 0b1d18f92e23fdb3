//! Code execution: OS commands (Unix shells, cmd and PowerShell), PHP and Java.

use std::sync::LazyLock;

use super::{rule, Class, Rule};

/// Command names distinctive enough that a shell separator before them means a command (not
/// English words: "find", "more", "set" need an argument that looks like one, [`WEAK`]).
const STRONG: &str = r"(?:cat|tac|nl|ls|id|whoami|uname|pwd|ping6?|curl|wget|nc|ncat|netcat|socat|telnet|ssh|scp|tftp|bash|sh|dash|ksh|csh|tcsh|zsh|powershell|pwsh|cmd|nslookup|dig|sleep|rm|rmdir|chmod|chown|chgrp|python[23]?|perl|ruby|php|node|lua|busybox|ifconfig|ipconfig|netstat|ps|head|tail|echo|env|printenv|systeminfo|tasklist|taskkill|certutil|bitsadmin|base64|base32|xxd|hexdump|od|touch|mkfifo|mknod|sudo|su|kill|killall|pkill|reboot|shutdown|halt|crontab|awk|gawk|sed|grep|egrep|hostname|uptime|lsof|nmap|wmic|rundll32|regsvr32|mshta|cscript|wscript|schtasks|netsh|whoami\.exe|iex|iwr|irm|getent|useradd|usermod|passwd|xterm|openssl|xargs|nohup|strace|gcc|chattr|wc|uniq|tee|systemctl|lsblk|dmesg|ldd|strings|readlink|realpath|whereis|traceroute|tracepath|whois|sendmail|printf|lsb_release|timeout|expand|type|dir|echo|set|more|find|net|ver)";

/// Command names that are also words: they count after a separator only with an argument
/// that looks like one (a flag, a path, a drive) or at the end of the value.
const WEAK: &str = r"(?:find|more|type|dir|set|del|copy|move|start|call|file|at|w|who|last|groups|ip|route|top|tree|free|time|make|write|mail|host|sort|cut|source|export|alias|history|less|stat|which|eval|exec|service|mount|df|du|cp|mv|ln|tar|zip|unzip|gzip|dd|vi|vim|nano|yes|seq|rev|expr|findstr|icacls|attrib|ren|rd|md|cls|vol|reg|sc|wget|curl|timeout|expand|certreq|paste|diff|cmp|comm|fold|join|split|look|pr|fmt|column|rsync|install|view|ed|ex|pg|zcat|zless|bzcat|xzcat)";

/// A path prefix a command may be written with.
const BIN: &str = r"(?:/(?:usr/)?(?:local/)?s?bin/|[a-z]:\\windows\\(?:system32\\)?(?:windowspowershell\\v1\.0\\)?)?";

static SEPARATED: LazyLock<String> = LazyLock::new(|| {
    // After a single pipe the command must not be a markdown table cell (`| id | name |`).
    format!(
        r#"(?:;|\|\||&&?|\n)\s*[{{(]?\s*{BIN}{STRONG}(?:\.exe)?(?:\s|$|;|\||&|<|>|#|\$|\{{|'|"|\)|`)|\|\s*[{{(]?\s*{BIN}{STRONG}(?:\.exe)?(?:\s*$|\s+[^|\s]|[;&<>#$'"){{`])"#
    )
});

static SEPARATED_WEAK: LazyLock<String> = LazyLock::new(|| {
    format!(
        // A single `&` then a word then `;` is an HTML entity (`&copy;`), not a command.
        r#"(?:;|\|\|?|&&|`|\$\()\s*[{{(]?\s*{WEAK}(?:\.exe)?(?:\s*$|\s+(?:-{{1,2}}\w|/\S|\\|[a-z]:[/\\]|%\w+%|\$\w|\.\.?/|~/)|\s*[<>;&`)])|&\s*[{{(]?\s*{WEAK}(?:\.exe)?(?:\s*$|\s+(?:-{{1,2}}\w|/\S|\\|[a-z]:[/\\]|%\w+%|\$\w|\.\.?/|~/)|\s*[<>&`)]|\s+;)"#
    )
});

static SUBSTITUTION: LazyLock<String> = LazyLock::new(|| {
    // A backtick after a backtick opens a markdown code fence (```python), not a substitution.
    format!(r"\$\(\s*{BIN}{STRONG}\b|(?:^|[^`])`\s*{BIN}{STRONG}\b[^`]{{0,200}}`")
});

static BRACES_AND_GLOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"\{{\s*{BIN}{STRONG}\s*,|(?:^|[\s;|&`$(])/[a-z?*]{{0,4}}[?*][a-z?*]*/[a-z?*]*[?*]|\b[a-z]+(?:\$@|\$\{{\}}|\$\(\))[a-z]+"
    )
});

pub fn rules() -> Vec<Rule> {
    vec![
        rule(932100, Class::Cmdi, 1, "separator then command", SEPARATED.as_str()),
        rule(
            932105,
            Class::Cmdi,
            1,
            "separator then a command that is also a word, with an argument",
            SEPARATED_WEAK.as_str(),
        ),
        rule(932110, Class::Cmdi, 1, "command substitution", SUBSTITUTION.as_str()),
        rule(
            932120,
            Class::Cmdi,
            1,
            "shell evasion, interpreters and server-side includes",
            r"\$\{?ifs\}?|\$\{?path:|/bin/(?:ba|z|da|k)?sh\b|/usr/bin/\w|\(\)\s*\{[^}]{0,20};\s*\}|<!--\s*#\s*(?:exec|include|echo|config|printenv|set|fsize|flastmod)\b|\bnc\s+-[el]|\b(?:curl|wget)\s+(?:-\w+\s+)*(?:https?|ftp)://",
        ),
        rule(
            932130,
            Class::Cmdi,
            1,
            "reverse shells and download-and-run",
            r"/(?:dev|inet)/(?:tcp|udp)/|\bxterm\s+-display\b|\bdd\s+(?:if|of)=|<<<\s*\S|[;&|]\s*\$0(?:$|[^\w.])|\$\{?[a-z_]\w*\}?\$\{?[a-z_]\w*\}?\s*(?:$|[;&|])|\bmkfifo\b|\bnc(?:at)?(?:\.exe)?\s+(?:-\w+\s+)*-[a-z]*[ec]\b|\b(?:curl|wget)\b[^|;\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|\bwget\b[^;|\n]{0,200}\s-o\s*-|\b(?:bash|sh|zsh|dash|ksh|python[23]?|perl|ruby|php|node|lua)(?:\.exe)?\s+-(?:c|e|i|r)\s|\bsocat\b[^;|\n]{0,80}\bexec:|\bexec\s+\d*<>|\btelnet\s+\S+\s+\d+\s*\|",
        ),
        rule(
            932140,
            Class::Cmdi,
            1,
            "PowerShell",
            r#"\b(?:powershell|pwsh)\.exe\b|(?:^|[;&|\n(`'"]\s*)(?:powershell|pwsh)\b|\b(?:powershell|pwsh)\s+(?:-\w|/\w|["'$&({]|iex\b|invoke-|[a-z]+-[a-z]+\b)|\b(?:invoke-(?:expression|webrequest|restmethod|command|item|wmimethod|shellcode|mimikatz)|start-process|start-bitstransfer|new-object\s+(?:-\w+\s+)?(?:system\.)?net\.webclient|downloadstring|downloadfile|frombase64string|set-executionpolicy|add-mppreference|get-wmiobject|get-ciminstance)\b|\biex\s*[($'"]|\|\s*iex\b|\b(?:iwr|irm)\s+(?:-\w+\s+)*['"]?(?:https?:|\$|//)|\$env\s*:\s*\w|\[(?:system\.)?(?:convert|text\.encoding|io\.file|diagnostics\.process|net\.webclient|reflection\.assembly)\]\s*::|-(?:encodedcommand|enc|ec)\s+[a-z0-9+/=]{16,}|-executionpolicy\s+bypass|-windowstyle\s+hidden|\b(?:get|set|new|remove|invoke|start|stop|add|out|convertto|convertfrom|copy|move|rename|clear)-(?:childitem|item|content|process|service|wmiobject|ciminstance|mppreference|executionpolicy|object|webrequest|restmethod|expression|command|localuser|localgroupmember|acl|itemproperty|variable|psdrive|clipboard|scheduledtask|netfirewallrule|computerinfo)\b"#,
        ),
        rule(
            932150,
            Class::Cmdi,
            1,
            "Windows commands and environment variables",
            r"\bcmd(?:\.exe)?\s*(?:/[a-z]\s*)*/[ckr]\b|%(?:comspec|systemroot|windir|userprofile|appdata|localappdata|temp|tmp|username|computername|programfiles|programdata|homedrive|homepath|public|allusersprofile|path|os|processor_architecture|userdomain|logonserver)(?::~[-\d,]+)?%|\bsc(?:\.exe)?\s+(?:query|create|config|start|stop|delete|qc)\b|\bcertutil(?:\.exe)?\b[^\n]{0,60}-(?:urlcache|decode|encode|split)\b|\bbitsadmin(?:\.exe)?\b[^\n]{0,60}/(?:transfer|create|addfile)\b|\b(?:rundll32|regsvr32|mshta|wmic|cscript|wscript|msiexec|schtasks|vssadmin|bcdedit|wevtutil)(?:\.exe)?\s+[/\w\x22'\\-]|\breg(?:\.exe)?\s+(?:add|query|delete|save|export)\s+hk|(?:^|[;&|\n]\s*)net(?:1|\.exe)?\s+(?:user|localgroup|group|share|view|use|session|accounts)\b",
        ),
        rule(
            932160,
            Class::Cmdi,
            1,
            "a command as the whole value",
            r"^\s*(?:whoami|systeminfo|tasklist|ifconfig|ipconfig(?:\s+/all)?|uname\s+-[asrmnv]+|netstat\s+-\w+|ps\s+-?aux|cat\s+/\S+|ls\s+-\w+\s+/\S*|dir\s+[a-z]:\\\S*|type\s+[a-z]:\\\S+|net\s+user|id\s*;)\s*$",
        ),
        rule(
            932170,
            Class::Cmdi,
            1,
            "brace expansion, globbing and empty-variable splitting",
            BRACES_AND_GLOBS.as_str(),
        ),
        rule(
            932180,
            Class::Cmdi,
            1,
            "argument injection: options that make a tool run or write",
            r"^\s*-{1,2}(?:checkpoint-action|upload-pack|receive-pack|to-command|use-compress-program|exec|output|config|post-file|eval|rsh|rcmd|command|script|use-askpass|output-document|load|preload)\b|\s-{1,2}(?:checkpoint-action|upload-pack|receive-pack|to-command|use-compress-program)=|^\s*-o\s*/|^\s*-exec\b",
        ),
        rule(
            932190,
            Class::Cmdi,
            1,
            "separator, a word and a flag",
            r"(?:;|\|\||&&)\s*[a-z_][\w.-]{1,20}\s+-{1,2}[a-z]{1,20}\b(?:\s|$)",
        ),
        rule(933100, Class::Php, 1, "PHP open tag", r"<\?(?:php\b|=|\s)"),
        rule(
            933110,
            Class::Php,
            1,
            "PHP stream wrapper",
            r"\b(?:php|phar|zip|expect|glob|zlib|compress\.zlib|compress\.bzip2|rar|ogg|ssh2(?:\.\w+)?)://|\bdata://",
        ),
        rule(
            933120,
            Class::Php,
            1,
            "PHP functions that run code or commands",
            r#"\b(?:passthru|shell_exec|proc_open|popen|pcntl_exec|create_function|phpinfo|highlight_file|show_source|gzinflate|gzuncompress|str_rot13|file_put_contents|move_uploaded_file|call_user_func(?:_array)?|base64_decode|preg_replace|assert_options)\s*\(|\b(?:system|exec|eval|assert)\s*\(\s*(?:\$|['"`]|base64|str_|gz|chr\s*\(|\w+\s*\()|\$_(?:get|post|request|cookie|server|files|env|session)\b|[(,]\s*['"](?:system|exec|passthru|shell_exec|popen|proc_open|assert|eval|phpinfo|pcntl_exec)['"]\s*[,)]|\b(?:print_r|var_dump|var_export|register_shutdown_function|register_tick_function|forward_static_call(?:_array)?|putenv|ini_set|ini_get_all|imap_open|mb_send_mail|fpassthru|file_get_contents|get_defined_vars|get_defined_functions|posix_getpwuid|array_filter|array_map|array_walk)\s*\(|\bmail\s*\(\s*['"][^'"]*@|\b(?:die|exit)\s*\(\s*(?:md5|sha1|crc32|base64_\w+|print\w*|system|exec|phpversion|\$)|\$\w+\s*\(\s*['"$]|['"]\w+['"]\s*\.\s*['"]\w+['"]|['"](?:\\x[0-9a-f]{2}){3,}['"]\s*\("#,
        ),
        rule(
            933130,
            Class::Php,
            1,
            "serialized PHP object or base64 PHP code",
            r#"(?:^|[;{\s"'=])[oc]:\+?\d+:"[\w\\]+":\d+:\{|\ba:\d+:\{\s*[isbdo]:\d|\bpd9wah[a-z0-9+/]|\bpd89[a-z0-9+/]{4}|\btzo[0-9a-z]{1,4}oi[a-z]|\byto[a-z0-9]on[a-z0-9+/]"#,
        ),
        rule(
            944100,
            Class::Java,
            1,
            "JNDI lookup and Log4j lookups (Log4Shell)",
            r"\$\{\s*jndi\s*:|\bjndi\s*:\s*(?:ldaps?|rmi|dns|iiop|corba|nds|nis|https?)\b|\$\{[^}]{0,40}\$\{|\$\{\s*(?:lower|upper|env|sys|date|java|base64|main|bundle|ctx|spring|k8s|docker|log4j|marker|map|sd|web|jvmrunargs|url|dns|script|file|const|localhost|resourcebundle|properties|xml)\s*:|\$\{\s*::-",
        ),
        rule(
            944110,
            Class::Java,
            1,
            "serialized Java object",
            r"(?:^|[^a-z0-9+])ro0ab|\baced0005|\\xac\\xed\\x00\\x05",
        ),
        rule(
            944120,
            Class::Java,
            1,
            "Java runtime, process and class-loader access",
            r#"java\.lang\.(?:runtime|processbuilder|system|class|reflect|thread)\b|getruntime\s*\(\s*\)|\.exec\s*\(\s*['"]|processbuilder\s*\(|\.getclass\s*\(\s*\)\s*\.\s*(?:forname|getclassloader|getmethod|getdeclared)|\bclass\s*\.\s*forname\s*\(|javax\.script\.scriptenginemanager|\bclass\.(?:module\.)?classloader|\bclassloader\.(?:resources|url)|\bjavax\.naming\b|org\.apache\.commons\.collections|\bysoserial\b|java\.beans\.xmldecoder|['"]\s*\.\s*execute\s*\(\s*\)|processgroovymethods|\bjdbc:[a-z0-9]+:.{0,200}(?:init\s*=|runscript|create\s+alias|autodeserialize|queryinterceptors|allowloadlocalinfile|allowurlinlocalinfile)|\bclass[\['"\].\s]+(?:module[\['"\].\s]+)?classloader\b|\bclass[\['"\].\s]+protectiondomain\b|com\.sun\.rowset\.jdbcrowsetimpl|jndiconnectionsource|(?:classpath|filesystem)xmlapplicationcontext|jndiobjectfactory|com\.zaxxer\.hikari|templatesimpl|java\.net\.inet[46]?address|com\.mchange\.v2\.c3p0|org\.apache\.xbean|bsh\.interpreter|jdk\.nashorn|org\.codehaus\.groovy|ch\.qos\.logback\.core\.db|org\.apache\.ibatis|org\.apache\.commons\.(?:configuration|beanutils)|com\.sun\.org\.apache|sun\.rmi\.|javax\.management|freemarker\.template\.utility\.(?:execute|objectconstructor|jythonruntime)|\?new\s*\(\s*\)"#,
        ),
        rule(
            944130,
            Class::Java,
            1,
            "OGNL and expression-language injection",
            r#"%\{\s*\(?\s*#|%\{\s*\d+\s*[*+/-]\s*\d+\s*\}|\$\{\s*#|#context\s*\.\s*get\b|\bredirect(?:action)?\s*:\s*\$\{|#_?memberaccess|#context\s*\[|@ognl|ognlcontext|\(#\w+\s*=|@java\.lang\.|\$\{\s*(?:t\s*\(|''\.|""\.|\w+\.getclass|applicationscope|requestscope|sessionscope|pagecontext|facescontext|param\.|header\.|initparam|@)|#\{\s*(?:t\s*\(|''\.|""\.|\w+\.getclass|request\.|session\.|facescontext)|\bt\s*\(\s*java\."#,
        ),
    ]
}
