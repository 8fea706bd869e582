// Pure helpers of the panel, tested without a browser (panel/lib_test.mjs).

/** Parses a text/event-stream body into its events. @param {string} text */
export function parseEvents(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let kind = "message", data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":") || line === "") continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ kind, data: data.join("\n") });
  }
  return events;
}

/** Attribute predicates "a=b c=d" (or comma-separated) as URL values. @param {string} text */
export function attrParams(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
