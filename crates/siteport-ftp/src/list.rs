//! Directory listing parsers: MLSD facts (RFC 3659), Unix `ls -l` style LIST, DOS/IIS LIST.

use std::time::SystemTime;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What a remote entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (LIST `l…`, MLSD `OS.unix=slink`/`symlink`).
    Symlink,
    /// Anything else the server reports (devices, sockets, unknown MLSD types).
    Other,
}

/// One entry of a remote directory. Never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The name inside its directory, exactly as the server sent it (no path separators).
    pub name: String,
    /// File, directory, link or other.
    pub kind: EntryKind,
    /// Size in bytes (0 when the server gives none, e.g. for directories).
    pub size: u64,
    /// Modification time, when the server gives one.
    pub mtime: Option<SystemTime>,
    /// True when `mtime` is exact to the second and in UTC (MLSD `modify`); false for LIST times,
    /// which are minute-precision (or day-precision for old files) in the server's time zone.
    pub mtime_precise: bool,
}

/// Parses one MLSD line (`fact=value;fact=value; name`). `None` for `.`/`..`, `cdir`/`pdir`
/// entries and lines that are not MLSD.
pub fn parse_mlsd_line(line: &str) -> Option<RemoteEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    // The facts end at the first space; the name is everything after it, spaces included.
    let (facts, name) = line.split_once(' ')?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let mut kind = None;
    let mut size = 0u64;
    let mut mtime = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                let v = value.to_ascii_lowercase();
                kind = Some(match v.as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" | "pdir" => return None,
                    _ if v.starts_with("os.unix=slink") || v.starts_with("os.unix=symlink") => {
                        EntryKind::Symlink
                    }
                    _ => EntryKind::Other,
                });
            }
            "size" => size = value.parse().unwrap_or(0),
            "modify" => mtime = parse_mdtm(value),
            _ => {}
        }
    }
    Some(RemoteEntry {
        name: name.to_string(),
        kind: kind?,
        size,
        mtime,
        mtime_precise: mtime.is_some(),
    })
}

/// Parses an MDTM reply value or MLSD `modify` fact: `YYYYMMDDHHMMSS[.fff]`, UTC.
pub fn parse_mdtm(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (main, _fraction) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| main[r].parse::<u32>().ok();
    let date = Date::from_calendar_date(
        n(0..4)? as i32,
        Month::try_from(n(4..6)? as u8).ok()?,
        n(6..8)? as u8,
    )
    .ok()?;
    let t = Time::from_hms(n(8..10)? as u8, n(10..12)? as u8, n(12..14)? as u8).ok()?;
    Some(PrimitiveDateTime::new(date, t).assume_utc().into())
}

/// Formats a time for `MFMT`: `YYYYMMDDHHMMSS` in UTC.
pub fn format_mdtm(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses one LIST line in Unix or DOS format. `now` decides the year of recent Unix entries
/// (`Mon DD HH:MM`: the latest such date not more than a day in the future). `None` for `.`,
/// `..`, `total N` and lines in neither format.
pub fn parse_list_line(line: &str, now: SystemTime) -> Option<RemoteEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    let first = line.chars().next()?;
    let entry = if first.is_ascii_digit() {
        parse_dos(line)
    } else {
        parse_unix(line, now)
    }?;
    if entry.name.is_empty() || entry.name == "." || entry.name == ".." {
        return None;
    }
    Some(entry)
}

/// Whitespace-separated fields with their byte offsets, up to `max` fields.
fn fields(line: &str, max: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c == ' ' || c == '\t' {
            if let Some(s) = start.take() {
                out.push((s, &line[s..i]));
                if out.len() == max {
                    return out;
                }
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

fn month(s: &str) -> Option<Month> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = s.to_ascii_lowercase();
    let i = NAMES.iter().position(|n| *n == lower)?;
    Month::try_from(i as u8 + 1).ok()
}

fn parse_unix(line: &str, now: SystemTime) -> Option<RemoteEntry> {
    let kind = match line.as_bytes()[0] {
        b'-' => EntryKind::File,
        b'd' => EntryKind::Dir,
        b'l' => EntryKind::Symlink,
        b'b' | b'c' | b'p' | b's' | b'D' => EntryKind::Other,
        _ => return None,
    };
    let perms = line.split(' ').next()?;
    if perms.len() < 10 {
        return None;
    }
    // The owner and group columns vary (missing group, numeric ids, names with spaces are rare);
    // anchor on `SIZE MON DD TIME|YEAR` instead and take the name as the rest of the line.
    let f = fields(line, 12);
    let mut found = None;
    for i in 2..f.len().saturating_sub(3) {
        if let (Some(m), Ok(day), Ok(size)) = (
            month(f[i].1),
            f[i + 1].1.parse::<u8>(),
            f[i - 1].1.parse::<u64>(),
        ) && (1..=31).contains(&day)
            && let Some(when) = unix_time(m, day, f[i + 2].1, now)
        {
            found = Some((i, size, when));
            break;
        }
    }
    let (i, size, mtime) = found?;
    let (off, tok) = f[i + 2];
    // Exactly one separator space follows the time column; further spaces belong to the name.
    let mut name = line.get(off + tok.len() + 1..)?.to_string();
    if kind == EntryKind::Symlink
        && let Some(pos) = name.find(" -> ")
    {
        name.truncate(pos);
    }
    Some(RemoteEntry {
        name,
        kind,
        size,
        mtime: Some(mtime),
        mtime_precise: false,
    })
}

fn unix_time(m: Month, day: u8, tok: &str, now: SystemTime) -> Option<SystemTime> {
    if let Some((h, min)) = tok.split_once(':') {
        let t = Time::from_hms(h.parse().ok()?, min.parse().ok()?, 0).ok()?;
        let now = OffsetDateTime::from(now);
        let mut year = now.year();
        let mut at =
            PrimitiveDateTime::new(Date::from_calendar_date(year, m, day).ok()?, t).assume_utc();
        if at > now + time::Duration::days(1) {
            year -= 1;
            at = PrimitiveDateTime::new(Date::from_calendar_date(year, m, day).ok()?, t)
                .assume_utc();
        }
        Some(at.into())
    } else if tok.len() == 4 {
        let year: i32 = tok.parse().ok()?;
        let d = Date::from_calendar_date(year, m, day).ok()?;
        Some(
            PrimitiveDateTime::new(d, Time::MIDNIGHT)
                .assume_utc()
                .into(),
        )
    } else {
        None
    }
}

fn parse_dos(line: &str) -> Option<RemoteEntry> {
    // `MM-DD-YY  HH:MMAM  <DIR>|SIZE  name`
    let f = fields(line, 3);
    if f.len() < 3 {
        return None;
    }
    let mut date = f[0].1.split(['-', '/']);
    let mon: u8 = date.next()?.parse().ok()?;
    let day: u8 = date.next()?.parse().ok()?;
    let mut year: i32 = date.next()?.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let tm = f[1].1.to_ascii_uppercase();
    let (hm, pm) = if let Some(x) = tm.strip_suffix("PM") {
        (x, true)
    } else if let Some(x) = tm.strip_suffix("AM") {
        (x, false)
    } else {
        (tm.as_str(), false)
    };
    let (h, min) = hm.split_once(':')?;
    let mut h: u8 = h.parse().ok()?;
    let min: u8 = min.parse().ok()?;
    if (tm.ends_with("AM") || tm.ends_with("PM")) && h == 12 {
        h = 0;
    }
    if pm {
        h += 12;
    }
    let when = PrimitiveDateTime::new(
        Date::from_calendar_date(year, Month::try_from(mon).ok()?, day).ok()?,
        Time::from_hms(h, min, 0).ok()?,
    )
    .assume_utc();
    // The third column is `<DIR>` or the size; the name starts after the spaces that follow it.
    let (off, tok) = f[2];
    let rest = &line[off + tok.len()..];
    let name = rest.trim_start_matches(' ').to_string();
    let (kind, size) = if tok.eq_ignore_ascii_case("<DIR>") {
        (EntryKind::Dir, 0)
    } else {
        (EntryKind::File, tok.replace(',', "").parse().ok()?)
    };
    Some(RemoteEntry {
        name,
        kind,
        size,
        mtime: Some(when.into()),
        mtime_precise: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(dt: OffsetDateTime) -> SystemTime {
        dt.into()
    }

    fn now() -> SystemTime {
        at(datetime!(2025-03-10 12:00 UTC))
    }

    #[test]
    fn unix_basic_file_and_dir() {
        let e = parse_list_line(
            "-rw-r--r--    1 1000     1000         4096 Mar 09 14:05 index.html",
            now(),
        )
        .unwrap();
        assert_eq!(e.name, "index.html");
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(e.size, 4096);
        assert_eq!(e.mtime, Some(at(datetime!(2025-03-09 14:05 UTC))));
        assert!(!e.mtime_precise);
        let d = parse_list_line(
            "drwxr-xr-x    2 ftp      ftp          4096 Jan 01  2020 assets",
            now(),
        )
        .unwrap();
        assert_eq!(d.kind, EntryKind::Dir);
        assert_eq!(d.name, "assets");
        assert_eq!(d.mtime, Some(at(datetime!(2020-01-01 0:00 UTC))));
    }

    #[test]
    fn unix_recent_date_in_the_future_means_last_year() {
        let e = parse_list_line("-rw-r--r-- 1 a b 1 Dec 24 10:00 x", now()).unwrap();
        assert_eq!(e.mtime, Some(at(datetime!(2024-12-24 10:00 UTC))));
    }

    #[test]
    fn unix_odd_names() {
        for name in [
            "with space.txt",
            "  leading spaces",
            "trailing space ",
            "-leading-dash",
            "#hash#",
            "ünïcødé ファイル.html",
            "a -> b looks like a link",
            "Jan 01 2020 fake date",
        ] {
            let line = format!("-rw-r--r--    1 0        0              12 Mar 01 09:00 {name}");
            let e = parse_list_line(&line, now()).unwrap();
            assert_eq!(e.name, name);
            assert_eq!(e.size, 12);
        }
    }

    #[test]
    fn unix_missing_group_column_and_symlink() {
        let e = parse_list_line("-rw-r--r-- 1 owner 77 Feb 02 2021 no group", now()).unwrap();
        assert_eq!((e.name.as_str(), e.size), ("no group", 77));
        let l = parse_list_line(
            "lrwxrwxrwx    1 0        0               9 Mar 01 09:00 latest -> v2/index",
            now(),
        )
        .unwrap();
        assert_eq!(l.kind, EntryKind::Symlink);
        assert_eq!(l.name, "latest");
    }

    #[test]
    fn unix_skips_dots_and_total() {
        assert!(parse_list_line("total 12", now()).is_none());
        assert!(parse_list_line("drwxr-xr-x 2 0 0 4096 Mar 01 09:00 .", now()).is_none());
        assert!(parse_list_line("drwxr-xr-x 2 0 0 4096 Mar 01 09:00 ..", now()).is_none());
        assert!(parse_list_line("garbage", now()).is_none());
        let hidden = parse_list_line("-rw------- 1 0 0 5 Mar 01 09:00 .htaccess", now()).unwrap();
        assert_eq!(hidden.name, ".htaccess");
    }

    #[test]
    fn dos_lines() {
        let d = parse_list_line("03-05-24  09:15PM       <DIR>          My Docs", now()).unwrap();
        assert_eq!(d.kind, EntryKind::Dir);
        assert_eq!(d.name, "My Docs");
        assert_eq!(d.mtime, Some(at(datetime!(2024-03-05 21:15 UTC))));
        let f = parse_list_line("12-31-2023  12:05AM           1,234 -dash #1.txt", now()).unwrap();
        assert_eq!(f.kind, EntryKind::File);
        assert_eq!(f.size, 1234);
        assert_eq!(f.name, "-dash #1.txt");
        assert_eq!(f.mtime, Some(at(datetime!(2023-12-31 0:05 UTC))));
        let u = parse_list_line("01-02-24  10:00AM              5 日本語.txt", now()).unwrap();
        assert_eq!(u.name, "日本語.txt");
    }

    #[test]
    fn mlsd_facts() {
        let e = parse_mlsd_line(
            "type=file;size=1830;modify=20240131235959.123;perm=adfrw;UNIX.mode=0644; a file; with;semis",
        )
        .unwrap();
        assert_eq!(e.name, "a file; with;semis");
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(e.size, 1830);
        assert_eq!(e.mtime, Some(at(datetime!(2024-01-31 23:59:59 UTC))));
        assert!(e.mtime_precise);
        let d = parse_mlsd_line("Type=dir;Modify=20200101000000; -leading").unwrap();
        assert_eq!((d.kind, d.name.as_str()), (EntryKind::Dir, "-leading"));
        assert!(parse_mlsd_line("type=cdir;modify=20200101000000; /x").is_none());
        assert!(parse_mlsd_line("type=pdir; ..").is_none());
        let l = parse_mlsd_line("type=OS.unix=slink:/tmp;size=4; ln").unwrap();
        assert_eq!(l.kind, EntryKind::Symlink);
        let no_time = parse_mlsd_line("type=file;size=1; #x").unwrap();
        assert!(!no_time.mtime_precise && no_time.mtime.is_none());
        assert!(parse_mlsd_line("size=1; untyped").is_none());
    }

    #[test]
    fn mdtm_round_trip() {
        let t = parse_mdtm("20240229123456").unwrap();
        assert_eq!(format_mdtm(t), "20240229123456");
        assert!(parse_mdtm("2024022912345").is_none());
        assert!(parse_mdtm("20241399123456").is_none());
    }
}
