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
use subledger_domain::money::{Currency, format_minor};
use subledger_domain::oplog::Actor;
use subledger_domain::rating::{Quantity, format_scaled};
use subledger_domain::text::{check_json_text, text_from_bytes};
use subledger_domain::usage::Outcome;
use subledger_service::Change;
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
        UsageFormat::Csv => Source::Csv(Box::new(CsvSource::new(file)?)),
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
        match services.ingest_usage(tenant, input, &Change::by(Actor::Cli)).await {
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
                            let currency = result.currency.expect("an event accepted now names a product of the catalog, which has a currency");
                            let amounts = totals.by_currency.entry(currency).or_default();
                            amounts.charged_cents += accepted.charge_cents;
                            amounts.rated_micros += accepted.rated_micros;
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

/// What an import's accepted events were charged and rated in one currency.
#[derive(Default)]
struct Amounts {
    charged_cents: i64,
    rated_micros: i64,
}

/// What an import did, line by line.
#[derive(Default)]
struct Totals {
    accepted: u64,
    duplicates: u64,
    /// Rejections by reason, `malformed` included.
    rejected: BTreeMap<String, u64>,
    /// What accepted events were charged and rated, per currency.
    by_currency: BTreeMap<Currency, Amounts>,
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

    /// An object with one member per currency: `{"CNY": …, "USD": …}`.
    fn per_currency(&self, value: impl Fn(&Amounts) -> Value) -> Value {
        Value::Object(self.by_currency.iter().map(|(currency, amounts)| (currency.code().to_owned(), value(amounts))).collect())
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
            "charged": self.per_currency(|a| json!(format_minor(a.charged_cents))),
            "charged_minor": self.per_currency(|a| json!(a.charged_cents)),
            "rated": self.per_currency(|a| json!(format_scaled(a.rated_micros, 6))),
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
        let charged: Vec<String> = self.by_currency.iter().map(|(currency, a)| format!("{} {currency}", format_minor(a.charged_cents))).collect();
        text.push_str(&format!("\ncharged     {}", if charged.is_empty() { "0.00".to_owned() } else { charged.join(", ") }));
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
    // Boxed: the CSV reader and its buffers are much larger than `Lines`.
    Csv(Box<CsvSource>),
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
            Source::Csv(source) => source.reader.get_ref().position,
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

/// The physical lines of a JSON-lines file, counted (line numbers are what
/// the report shows).
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

/// The CSV reader's own buffer: how far it reads ahead of the record it parses.
const CSV_BUFFER_BYTES: usize = 1 << 16;

/// The file as the CSV reader reads it: without a byte-order mark
/// (spreadsheet exports), and ending with a line break even where the file
/// does not, so that every record ends with one and its first line follows
/// from the reader's line count ([`CsvSource::next_record`]).
///
/// It stops reading once a record (with the blank lines before it) runs past
/// [`LINE_BYTES_MAX`]: that is a quote left open, most likely, and no later
/// record can be told apart from it, so the import stops there rather than
/// take the rest of the file into memory.
struct CsvInput {
    file: BufReader<File>,
    /// Bytes of the file read so far.
    position: u64,
    /// Bytes handed to the CSV reader so far, and where its current record began.
    handed: u64,
    record_start: u64,
    /// The last byte handed over.
    last: Option<u8>,
}

const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();

impl CsvInput {
    fn new(file: File) -> std::io::Result<CsvInput> {
        let mut file = BufReader::with_capacity(1 << 16, file);
        let mark = if file.fill_buf()?.starts_with(BYTE_ORDER_MARK) { BYTE_ORDER_MARK.len() } else { 0 };
        file.consume(mark);
        Ok(CsvInput { file, position: mark as u64, handed: 0, record_start: 0, last: None })
    }
}

impl Read for CsvInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.handed - self.record_start > LINE_BYTES_MAX + CSV_BUFFER_BYTES as u64 {
            return Err(std::io::Error::other(format!("a record runs past {LINE_BYTES_MAX} bytes (a quote left open?)")));
        }
        let mut read = self.file.read(buf)?;
        self.position += read as u64;
        if read == 0 && !buf.is_empty() && self.last.is_some_and(|last| last != b'\n') {
            buf[0] = b'\n';
            read = 1;
        }
        if let Some(&last) = buf[..read].last() {
            self.last = Some(last);
        }
        self.handed += read as u64;
        Ok(read)
    }
}

struct CsvSource {
    reader: csv::Reader<CsvInput>,
    record: csv::ByteRecord,
    columns: Columns,
}

impl CsvSource {
    fn new(file: File) -> Result<CsvSource, AnyError> {
        let input = CsvInput::new(file).map_err(|e| format!("cannot read the CSV header row: {e}"))?;
        // Records end at `\n` only (a `\r` before it is trimmed with the
        // field), so that each ends with exactly the line break counted.
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).terminator(csv::Terminator::Any(b'\n')).buffer_capacity(CSV_BUFFER_BYTES).from_reader(input);
        let mut record = csv::ByteRecord::new();
        let line = match next_record(&mut reader, &mut record).map_err(|e| format!("cannot read the CSV header row: {e}"))? {
            Some(line) => line,
            None => return Err("the CSV file is empty: it needs a header row (id,account,product,quantity …)".into()),
        };
        let headers = csv_texts(&record).map_err(|error| format!("the CSV header row (line {line}): {error}"))?;
        let mut names = Vec::with_capacity(headers.len());
        for name in headers {
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
        Ok(CsvSource { reader, record, columns })
    }

    fn next(&mut self) -> Result<Option<Record>, String> {
        let Some(line) = next_record(&mut self.reader, &mut self.record)? else { return Ok(None) };
        Ok(Some(Record { line, event: csv_texts(&self.record).and_then(|fields| self.event(&fields)) }))
    }

    fn event(&self, fields: &[&str]) -> Result<UsageEventIn, String> {
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

/// Reads the next record that is not blank (every field empty or blanks)
/// into `record`, and returns the line it starts on.
fn next_record(reader: &mut csv::Reader<CsvInput>, record: &mut csv::ByteRecord) -> Result<Option<u64>, String> {
    loop {
        if !reader.read_byte_record(record).map_err(|e| e.to_string())? {
            return Ok(None);
        }
        reader.get_mut().record_start = reader.position().byte();
        if record.iter().all(|field| field.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))) {
            continue;
        }
        // The reader counts every `\n` it reads: those inside quoted fields,
        // and the one that ends the record (`CsvInput` sees to it).
        let inside = record.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
        return Ok(Some(reader.position().line() - inside - 1));
    }
}

/// The fields of a record as text (`domain::text`: UTF-8 without NUL), each
/// checked alone: bytes that are UTF-8 only across a delimiter are not.
fn csv_texts(record: &csv::ByteRecord) -> Result<Vec<&str>, String> {
    record.iter().map(|field| text_from_bytes(field).map_err(|error| format!("the line {error}"))).collect()
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
    use std::io::{Seek, Write};

    use super::*;

    fn source(bytes: &[u8]) -> Result<CsvSource, AnyError> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        CsvSource::new(file)
    }

    /// An event's id and `note`, or why the record is malformed.
    type Parsed = Result<(String, Option<String>), String>;

    /// Every record of the file: its first line and what it holds.
    fn records(bytes: &[u8]) -> Vec<(u64, Parsed)> {
        let mut source = source(bytes).unwrap();
        std::iter::from_fn(|| source.next().unwrap()).map(|r| (r.line, r.event.map(|e| (e.id, e.attributes.get("note").cloned())))).collect()
    }

    #[test]
    fn records_keep_the_line_they_start_on() {
        // A spreadsheet's file: byte-order mark, CRLF, blank lines and rows,
        // a quoted value over two lines, no line break at the end.
        let file = "\u{feff}id,account,product,quantity,note\r\n\r\n\na1,alice001,sms,1,\"two\r\nlines, \"\"quoted\"\"\"\r\n,,,,\r\n\r\na2,alice001,sms,x,\r\n\na3, alice001 ,sms,1,last";
        let read = records(file.as_bytes());
        assert_eq!(read.len(), 3, "{read:?}");
        assert_eq!(read[0], (4, Ok(("a1".to_owned(), Some("two\r\nlines, \"quoted\"".to_owned())))));
        assert_eq!(read[1].0, 8);
        assert!(read[1].1.as_ref().is_err_and(|e| e.contains("quantity \"x\"")), "{read:?}");
        assert_eq!(read[2], (10, Ok(("a3".to_owned(), Some("last".to_owned())))));
    }

    #[test]
    fn fields_are_text_one_by_one() {
        // 中 split by a delimiter is UTF-8 only when the fields are joined.
        let read = records(b"id,account,product,quantity,note\na1,alice001,sms,1,\xE4,\xB8\xAD\na2,alice001,sms,1\na3,alice001,sms,1,a\0b\n");
        let errors: Vec<(u64, String)> = read.into_iter().map(|(line, r)| (line, r.unwrap_err())).collect();
        assert_eq!(errors, [(2, "the line is not valid UTF-8".to_owned()), (3, "4 fields where the header has 5".to_owned()), (4, "the line holds a NUL character".to_owned())]);
    }

    #[test]
    fn a_quote_left_open_stops_the_reader() {
        let mut file = b"id,account,product,quantity\na1,alice001,sms,1\na2,\"alice001,sms,1\n".to_vec();
        file.extend(std::iter::repeat_n(b"a2,alice001,sms,1\n", 70_000).flatten());
        let mut source = source(&file).unwrap();
        assert_eq!(source.next().unwrap().map(|r| r.line), Some(2));
        let error = std::iter::from_fn(|| source.next().transpose()).find_map(Result::err).expect("an error");
        assert!(error.contains("runs past 1048576 bytes"), "{error}");
    }

    #[test]
    fn the_header_row_is_checked() {
        let error = |bytes: &[u8]| source(bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error(b"").contains("empty"));
        assert!(error(b"\n\n").contains("empty"));
        assert!(error(b"id,account,product,quantity,id\n").contains("\"id\" appears twice"));
        assert!(error(b"id,account,quantity\n").contains("no \"product\" column"));
        assert!(error(b"\nid,acc\xFFount,product,quantity\n").contains("(line 2): the line is not valid UTF-8"));
    }
}
