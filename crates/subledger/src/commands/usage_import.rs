//! `subledger usage import`: streams a file of usage events into the service.
//!
//! A reader thread parses the file (CSV or JSON lines) into batches while the
//! previous batch is being ingested; the file is never held whole. Each batch
//! is one `Services::ingest_usage` call, so it is recorded whole or not at all,
//! and ids already recorded come back as duplicates: running an import again
//! (after a failure half-way, or by mistake) charges nothing twice.
//!
//! A line that cannot be parsed is counted as rejected (`malformed`) with its
//! line number, and the import goes on. So is an event the service refuses to
//! take at all (an over-long id, too many attributes …): the batch holding it
//! is split until that event is alone, so the rest of the batch still lands.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};
use subledger_domain::money::format_minor;
use subledger_domain::rating::{Quantity, format_scaled};
use subledger_domain::text::{check_json_text, text_from_bytes};
use subledger_domain::usage::Outcome;
use subledger_service::tenants::Tenant;
use subledger_service::usage::UsageEventIn;
use subledger_service::{ServiceError, Services};
use tokio::sync::mpsc;

use super::{parse_instant, print};
use crate::cli::{UsageFormat, UsageImportArgs};
use crate::serve::AnyError;

/// Malformed lines listed in the report (all are counted).
const MALFORMED_LISTED: usize = 20;
/// Longest line of a file (and longest CSV record).
const LINE_BYTES_MAX: u64 = 1 << 20;
/// Batches parsed ahead of the one being ingested.
const BATCHES_AHEAD: usize = 2;

/// One data line of the file: its event, or why it could not be read.
struct Record {
    line: u64,
    event: Result<UsageEventIn, String>,
}

/// What the reader hands over: a batch of events and the lines it skipped.
struct Chunk {
    events: Vec<(u64, UsageEventIn)>,
    malformed: Vec<(u64, String)>,
    /// Bytes of the file read so far.
    position: u64,
}

pub(super) async fn import(services: &Services, args: UsageImportArgs) -> Result<ExitCode, AnyError> {
    let format = match args.format {
        Some(format) => format,
        None => format_of(&args.file)?,
    };
    let tenant = services.find_tenant(&args.tenant).await?;
    let file = File::open(&args.file).map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut source = match format {
        UsageFormat::Csv => Source::Csv(CsvSource::new(file)?),
        UsageFormat::Jsonl => Source::Jsonl(Lines::new(file)),
    };

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {percent:>3}% {bytes}/{total_bytes} eta {eta} {wide_msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    };

    let (sender, mut chunks) = mpsc::channel::<Result<Chunk, String>>(BATCHES_AHEAD);
    let batch_size = args.batch_size;
    let reader = tokio::task::spawn_blocking(move || source.read_into(batch_size, &sender));

    let mut totals = Totals::default();
    let mut failure: Option<AnyError> = None;
    while let Some(chunk) = chunks.recv().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                failure = Some(format!("cannot read {}: {error}", args.file.display()).into());
                break;
            }
        };
        let mut malformed = chunk.malformed;
        let outcome = ingest(services, &tenant, chunk.events, &mut totals, &mut malformed).await;
        // Lines the parser skipped and events the service refused, in file order.
        malformed.sort_by_key(|(line, _)| *line);
        for (line, error) in malformed {
            totals.malformed(line, error);
        }
        if let Err(error) = outcome {
            failure = Some(error.into());
            break;
        }
        bar.set_position(chunk.position);
        bar.set_message(format!("{} accepted, {} duplicates, {} rejected", totals.accepted, totals.duplicates, totals.rejected()));
    }
    // Stops the reader if it is still going (its next send fails).
    drop(chunks);
    let _ = reader.await;
    bar.finish_and_clear();

    if let Some(error) = failure {
        eprintln!("{}", totals.text(&args.file, format));
        let recorded = match totals.last_line {
            0 => "nothing was recorded".to_owned(),
            line => format!("the events up to line {line} were recorded"),
        };
        return Err(format!("{error}\nthe import stopped: {recorded}; running the same import again is safe (recorded ids count as duplicates)").into());
    }
    print(args.json, totals.json(&args.file, format), || totals.text(&args.file, format));
    Ok(ExitCode::SUCCESS)
}

fn format_of(path: &Path) -> Result<UsageFormat, AnyError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(UsageFormat::Csv),
        Some("jsonl" | "ndjson" | "json") => Ok(UsageFormat::Jsonl),
        _ => Err(format!("cannot tell the format of {} from its extension; give --format csv or --format jsonl", path.display()).into()),
    }
}

/// Ingests one batch. An event the service refuses to take at all makes it
/// refuse the whole batch (nothing is written); the batch is then split in
/// halves until each such event is alone, and it goes to `malformed`.
async fn ingest(services: &Services, tenant: &Tenant, events: Vec<(u64, UsageEventIn)>, totals: &mut Totals, malformed: &mut Vec<(u64, String)>) -> Result<(), ServiceError> {
    let mut pending = vec![events];
    while let Some(mut batch) = pending.pop() {
        let Some(&(last_line, _)) = batch.last() else { continue };
        let input: Vec<UsageEventIn> = batch.iter().map(|(_, event)| event.clone()).collect();
        match services.ingest_usage(tenant, input).await {
            Ok(results) => {
                for ((line, _), result) in batch.iter().zip(results) {
                    totals.last_line = totals.last_line.max(*line);
                    if result.duplicate {
                        totals.duplicates += 1;
                        continue;
                    }
                    match result.outcome {
                        Outcome::Accepted(accepted) => {
                            totals.accepted += 1;
                            totals.charged_cents += accepted.charge_cents;
                            totals.rated_micros += accepted.rated_micros;
                        }
                        Outcome::Rejected(reason) => *totals.rejected.entry(reason.as_str().to_owned()).or_default() += 1,
                    }
                }
            }
            Err(ServiceError::Invalid { field: "event", reason }) if batch.len() == 1 => {
                malformed.push((last_line, reason));
                totals.last_line = totals.last_line.max(last_line);
            }
            Err(ServiceError::Invalid { field: "event", .. }) => {
                // Earlier lines first: within a file, the first of two equal ids wins.
                let later = batch.split_off(batch.len() / 2);
                pending.push(later);
                pending.push(batch);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// What an import did, line by line.
#[derive(Default)]
struct Totals {
    accepted: u64,
    duplicates: u64,
    /// Rejections by reason, `malformed` included.
    rejected: BTreeMap<String, u64>,
    charged_cents: i64,
    rated_micros: i64,
    malformed_listed: Vec<(u64, String)>,
    last_line: u64,
}

impl Totals {
    fn malformed(&mut self, line: u64, error: String) {
        *self.rejected.entry("malformed".to_owned()).or_default() += 1;
        if self.malformed_listed.len() < MALFORMED_LISTED {
            self.malformed_listed.push((line, error));
        }
    }

    fn rejected(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn json(&self, file: &Path, format: UsageFormat) -> Value {
        json!({
            "file": file.display().to_string(),
            "format": format_name(format),
            "events": self.accepted + self.duplicates + self.rejected(),
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected(),
            "rejected_by_reason": self.rejected,
            "charged": format_minor(self.charged_cents),
            "charged_minor": self.charged_cents,
            "rated": format_scaled(self.rated_micros, 6),
            "malformed": self.malformed_listed.iter().map(|(line, error)| json!({"line": line, "error": error})).collect::<Vec<_>>(),
        })
    }

    fn text(&self, file: &Path, format: UsageFormat) -> String {
        let mut text = format!(
            "{} ({}): {} events\naccepted    {}\nduplicates  {}\nrejected    {}",
            file.display(),
            format_name(format),
            self.accepted + self.duplicates + self.rejected(),
            self.accepted,
            self.duplicates,
            self.rejected()
        );
        for (reason, count) in &self.rejected {
            text.push_str(&format!("\n  {reason:<20} {count}"));
        }
        text.push_str(&format!("\ncharged     {}", format_minor(self.charged_cents)));
        if let Some(malformed) = self.rejected.get("malformed") {
            text.push_str(&format!("\nmalformed lines (first {} of {malformed}):", self.malformed_listed.len()));
            for (line, error) in &self.malformed_listed {
                text.push_str(&format!("\n  line {line}: {error}"));
            }
        }
        text
    }
}

fn format_name(format: UsageFormat) -> &'static str {
    match format {
        UsageFormat::Csv => "csv",
        UsageFormat::Jsonl => "jsonl",
    }
}

enum Source {
    Csv(CsvSource),
    Jsonl(Lines),
}

impl Source {
    fn next(&mut self) -> Result<Option<Record>, String> {
        match self {
            Source::Csv(source) => source.next(),
            Source::Jsonl(lines) => next_json_line(lines),
        }
    }

    fn position(&self) -> u64 {
        match self {
            Source::Csv(source) => source.lines.position,
            Source::Jsonl(lines) => lines.position,
        }
    }

    /// Runs on the reader thread: parses the file into chunks of at most
    /// `batch_size` events until the end, a read error, or the receiver leaving.
    fn read_into(&mut self, batch_size: usize, sender: &mpsc::Sender<Result<Chunk, String>>) {
        loop {
            let mut chunk = Chunk { events: Vec::with_capacity(batch_size), malformed: Vec::new(), position: 0 };
            let mut done = false;
            while chunk.events.len() < batch_size {
                match self.next() {
                    Ok(Some(Record { line, event: Ok(event) })) => chunk.events.push((line, event)),
                    Ok(Some(Record { line, event: Err(error) })) => chunk.malformed.push((line, error)),
                    Ok(None) => {
                        done = true;
                        break;
                    }
                    Err(error) => {
                        chunk.position = self.position();
                        let _ = sender.blocking_send(Ok(chunk));
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
            chunk.position = self.position();
            if sender.blocking_send(Ok(chunk)).is_err() || done {
                return;
            }
        }
    }
}

/// The physical lines of a file, counted (line numbers are what the report
/// shows, so the importer splits lines itself rather than trusting a parser's
/// count, which skips blank lines and CRLF terminators in its own way).
struct Lines {
    reader: BufReader<File>,
    /// Number of the line in `text`, from 1.
    line: u64,
    /// Bytes read so far.
    position: u64,
    /// The current line without its terminator (`\n` or `\r\n`).
    text: Vec<u8>,
}

impl Lines {
    fn new(file: File) -> Lines {
        Lines { reader: BufReader::with_capacity(1 << 16, file), line: 0, position: 0, text: Vec::new() }
    }

    /// Reads the next line into `text`: `Ok(None)` at the end, `Ok(Some(false))`
    /// for a line longer than [`LINE_BYTES_MAX`] (skipped; `text` is empty).
    fn next(&mut self) -> Result<Option<bool>, String> {
        self.text.clear();
        let read = (&mut self.reader).take(LINE_BYTES_MAX + 1).read_until(b'\n', &mut self.text).map_err(|e| e.to_string())?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.position += read as u64;
        // A byte-order mark (spreadsheet exports) is not part of the first line.
        if self.line == 1 && self.text.starts_with("\u{feff}".as_bytes()) {
            self.text.drain(..3);
        }
        if self.text.last() == Some(&b'\n') {
            self.text.pop();
            if self.text.last() == Some(&b'\r') {
                self.text.pop();
            }
        } else if read as u64 > LINE_BYTES_MAX {
            self.position += self.reader.skip_until(b'\n').map_err(|e| e.to_string())? as u64;
            self.text.clear();
            return Ok(Some(false));
        }
        Ok(Some(true))
    }
}

fn too_long() -> String {
    format!("longer than {LINE_BYTES_MAX} bytes")
}

/// Columns of a usage CSV.
struct Columns {
    id: usize,
    account: usize,
    product: usize,
    quantity: usize,
    occurred_at: Option<usize>,
    /// Every other column: an attribute of that name (empty cells are left out).
    attributes: Vec<(usize, String)>,
    count: usize,
}

struct CsvSource {
    lines: Lines,
    columns: Columns,
}

/// A CSV record, which spans lines where a quoted field holds line breaks.
enum CsvRecord {
    /// Its first line, and its fields.
    Fields(u64, Vec<String>),
    Malformed(u64, String),
}

impl CsvSource {
    fn new(file: File) -> Result<CsvSource, AnyError> {
        let mut lines = Lines::new(file);
        let headers = match read_csv_record(&mut lines).map_err(|e| format!("cannot read the CSV header row: {e}"))? {
            Some(CsvRecord::Fields(_, headers)) => headers,
            Some(CsvRecord::Malformed(line, error)) => return Err(format!("the CSV header row (line {line}): {error}").into()),
            None => return Err("the CSV file is empty: it needs a header row (id,account,product,quantity …)".into()),
        };
        let mut names = Vec::with_capacity(headers.len());
        for name in &headers {
            let name = name.trim();
            if names.contains(&name) {
                return Err(format!("CSV header {name:?} appears twice").into());
            }
            names.push(name);
        }
        let find = |wanted: &str| names.iter().position(|n| *n == wanted);
        let required = |wanted: &'static str| {
            find(wanted).ok_or_else(|| format!("the CSV header row has no {wanted:?} column (it needs id,account,product,quantity and may have occurred_at and attribute columns)"))
        };
        let columns = Columns {
            id: required("id")?,
            account: required("account")?,
            product: required("product")?,
            quantity: required("quantity")?,
            occurred_at: find("occurred_at"),
            attributes: names.iter().enumerate().filter(|(_, n)| !["id", "account", "product", "quantity", "occurred_at"].contains(n)).map(|(i, n)| (i, (*n).to_owned())).collect(),
            count: names.len(),
        };
        Ok(CsvSource { lines, columns })
    }

    fn next(&mut self) -> Result<Option<Record>, String> {
        Ok(match read_csv_record(&mut self.lines)? {
            None => None,
            Some(CsvRecord::Malformed(line, error)) => Some(Record { line, event: Err(error) }),
            Some(CsvRecord::Fields(line, fields)) => Some(Record { line, event: self.event(fields) }),
        })
    }

    fn event(&self, fields: Vec<String>) -> Result<UsageEventIn, String> {
        let c = &self.columns;
        if fields.len() != c.count {
            return Err(format!("{} fields where the header has {}", fields.len(), c.count));
        }
        let field = |i: usize| fields[i].trim();
        let occurred_at_us = match c.occurred_at.map(field) {
            Some(text) if !text.is_empty() => parse_instant(text)?,
            _ => jiff::Timestamp::now().as_microsecond(),
        };
        let mut attributes = BTreeMap::new();
        for (i, name) in &c.attributes {
            let value = field(*i);
            if !value.is_empty() {
                attributes.insert(name.clone(), value.to_owned());
            }
        }
        Ok(UsageEventIn {
            id: field(c.id).to_owned(),
            username: field(c.account).to_owned(),
            product: field(c.product).to_owned(),
            quantity: parse_quantity(field(c.quantity))?,
            occurred_at_us,
            attributes,
        })
    }
}

/// Reads the next CSV record: the next line that is not blank (or only
/// commas), joined with the lines after it while a quoted field is open.
fn read_csv_record(lines: &mut Lines) -> Result<Option<CsvRecord>, String> {
    loop {
        let Some(fits) = lines.next()? else { return Ok(None) };
        let first = lines.line;
        if !fits {
            return Ok(Some(CsvRecord::Malformed(first, too_long())));
        }
        if lines.text.iter().all(|b| matches!(b, b',' | b' ' | b'\t')) {
            continue;
        }
        let mut text = std::mem::take(&mut lines.text);
        loop {
            let record = match text_from_bytes(&text) {
                Ok(record) => record,
                Err(error) => return Ok(Some(CsvRecord::Malformed(first, format!("the line {error}")))),
            };
            if let Some(fields) = csv_fields(record) {
                return Ok(Some(CsvRecord::Fields(first, fields)));
            }
            match lines.next()? {
                Some(true) if text.len() as u64 + lines.text.len() as u64 <= LINE_BYTES_MAX => {
                    text.push(b'\n');
                    text.extend_from_slice(&lines.text);
                }
                Some(_) => return Ok(Some(CsvRecord::Malformed(first, too_long()))),
                None => return Ok(Some(CsvRecord::Malformed(first, "a quoted field is not closed".to_owned()))),
            }
        }
    }
}

/// The fields of one CSV record, or `None` while a quoted field is still open
/// at the end of `text`. Quoting as RFC 4180: a field that starts with `"`
/// (after optional blanks) runs to the next lone `"`, and `""` inside it is a
/// quote; a `"` inside an unquoted field is text.
fn csv_fields(text: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut at_start, mut quoted) = (true, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
        } else if at_start && c == '"' {
            // Blanks before the opening quote are not part of the field.
            field.clear();
            quoted = true;
            at_start = false;
        } else {
            at_start &= c == ' ' || c == '\t';
            field.push(c);
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

fn parse_quantity(text: &str) -> Result<Quantity, String> {
    Quantity::parse(text).map_err(|e| format!("quantity {text:?}: {e}"))
}

/// One line of a JSON-lines file: the event object of `POST /v1/usage`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    id: String,
    account: String,
    product: String,
    /// Decimal string or integer.
    quantity: Quantity,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
}

fn next_json_line(lines: &mut Lines) -> Result<Option<Record>, String> {
    loop {
        let Some(fits) = lines.next()? else { return Ok(None) };
        if !fits {
            return Ok(Some(Record { line: lines.line, event: Err(too_long()) }));
        }
        if lines.text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(Some(Record { line: lines.line, event: event_of_line(&lines.text) }));
    }
}

fn event_of_line(bytes: &[u8]) -> Result<UsageEventIn, String> {
    check_json_text(bytes).map_err(|error| format!("the line {error}"))?;
    let event: EventLine = serde_json::from_slice(bytes).map_err(|e| {
        // serde's message without its "at line 1 column N" (the line is ours to tell).
        let text = e.to_string();
        let message = text.rfind(" at line ").map_or(text.as_str(), |i| &text[..i]);
        format!("{message} (column {})", e.column())
    })?;
    let occurred_at_us = match event.occurred_at.as_deref() {
        Some(text) => parse_instant(text)?,
        None => jiff::Timestamp::now().as_microsecond(),
    };
    let mut attributes = BTreeMap::new();
    for (name, value) in event.attributes {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => return Err(format!("attribute {name} must be a string or an integer, not {other}")),
        };
        attributes.insert(name, text);
    }
    Ok(UsageEventIn { id: event.id, username: event.account, product: event.product, quantity: event.quantity, occurred_at_us, attributes })
}

#[cfg(test)]
mod tests {
    use super::csv_fields;

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        let fields = |text: &str| csv_fields(text).map(|f| f.join("|"));
        assert_eq!(fields("a,b,c").as_deref(), Some("a|b|c"));
        assert_eq!(fields("a,,").as_deref(), Some("a||"));
        assert_eq!(fields("a,\"b,c\",d").as_deref(), Some("a|b,c|d"));
        assert_eq!(fields("a,\"b\"\"c\"").as_deref(), Some("a|b\"c"), "a doubled quote is a quote");
        assert_eq!(fields("a,b\"c,d").as_deref(), Some("a|b\"c|d"), "a quote inside an unquoted field is text");
        assert_eq!(fields("a, \"b,c\" ,d").as_deref(), Some("a|b,c |d"), "blanks may precede the opening quote");
        assert_eq!(fields("a,\"multi\nline\"").as_deref(), Some("a|multi\nline"));
        assert_eq!(fields("a,\"open"), None);
        assert_eq!(fields("a,\"b\"\""), None);
        assert_eq!(fields("名前,数量").as_deref(), Some("名前|数量"));
    }
}
