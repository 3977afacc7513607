// Sends events with one of Inngest's official JS SDKs, as an app does: `inngest.send(...)`.
// Usage: node send.mjs JOB_JSON, where the job is {"sdk": "inngest" | "inngest3",
// "events": [...] or {...}, "env": optional}. The SDK finds the Event API and the key the way
// an app's does, in INNGEST_EVENT_API_BASE_URL and INNGEST_EVENT_KEY. Prints one JSON line per
// HTTP attempt the SDK made ({"attempt": {url, headers, body, status}}), recorded through the
// SDK's own `fetch` option, then {"ids": [...]} or {"error": "..."} with how long it took.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const job = JSON.parse(process.argv[2]);
const { Inngest } = require(job.sdk);

const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function recordingFetch(url, init) {
  const record = { url: String(url), headers: { ...init.headers }, body: String(init.body) };
  try {
    const response = await fetch(url, init);
    record.status = response.status;
    return response;
  } catch (err) {
    record.failure = String(err?.cause?.code ?? err);
    throw err;
  } finally {
    print({ attempt: record });
  }
}

const inngest = new Inngest({ id: "sdk-client", fetch: recordingFetch });
const started = Date.now();
try {
  const options = job.env ? { env: job.env } : undefined;
  const { ids } = await inngest.send(job.events, options);
  print({ ids, ms: Date.now() - started });
} catch (err) {
  print({ error: String(err?.message ?? err), ms: Date.now() - started });
}
