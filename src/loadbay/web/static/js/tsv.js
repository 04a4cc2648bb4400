// Tab-separated text to CSV, a piece at a time (a file is read in slices). Fields may be
// quoted as spreadsheets write them ("a ""quoted"" value", tabs and line breaks inside).

function csvField(field) {
  return /[",\r\n]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field;
}

export class TsvToCsv {
  constructor() {
    this.field = "";
    this.row = [];
    this.state = "start"; // start | plain | quoted | quote (a quote inside a quoted field)
    this.skipLF = false;
  }

  /** The CSV text of the rows `text` completes. */
  push(text) {
    let out = "";
    for (const ch of text) {
      if (this.skipLF) {
        this.skipLF = false;
        if (ch === "\n") continue;
      }
      out += this.step(ch);
    }
    return out;
  }

  /** The CSV text of the last row, if the text did not end with a line break. */
  end() {
    if (this.state === "start" && this.row.length === 0 && this.field === "") return "";
    return this.endRow();
  }

  step(ch) {
    switch (this.state) {
      case "quoted":
        if (ch === '"') this.state = "quote";
        else this.field += ch;
        return "";
      case "quote":
        if (ch === '"') {
          this.field += '"';
          this.state = "quoted";
          return "";
        }
        return this.separator(ch) ?? this.plain(ch);
      case "start":
        if (ch === '"') {
          this.state = "quoted";
          return "";
        }
      // falls through
      default:
        return this.separator(ch) ?? this.plain(ch);
    }
  }

  plain(ch) {
    this.field += ch;
    this.state = "plain";
    return "";
  }

  /** The output for a tab or line break (undefined for any other character). */
  separator(ch) {
    if (ch === "\t") {
      this.row.push(this.field);
      this.field = "";
      this.state = "start";
      return "";
    }
    if (ch === "\n" || ch === "\r") {
      this.skipLF = ch === "\r";
      return this.endRow();
    }
    return undefined;
  }

  endRow() {
    this.row.push(this.field);
    const line = this.row.map(csvField).join(",") + "\r\n";
    this.row = [];
    this.field = "";
    this.state = "start";
    return line;
  }
}

/** The file as CSV (a Blob), read a megabyte at a time; onProgress(done, total) on the way. */
export async function tsvFileToCsv(file, onProgress) {
  const decoder = new TextDecoder("utf-8");
  const converter = new TsvToCsv();
  const parts = [];
  const step = 1 << 20;
  for (let start = 0; start < file.size; start += step) {
    const buffer = await file.slice(start, start + step).arrayBuffer();
    parts.push(converter.push(decoder.decode(buffer, { stream: true })));
    onProgress(Math.min(file.size, start + step), file.size);
  }
  parts.push(converter.push(decoder.decode()), converter.end());
  return new Blob(parts, { type: "text/csv" });
}
