// An app's own transaction through node-postgres: BEGIN, a row of the app's, the service's
// send_event in the same transaction, then COMMIT or ROLLBACK, as the app's code would write it.
// Reads {"url", "schema", "name", "data", "commit"} as JSON on stdin; prints {"id"}.
import pg from "pg";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const client = new pg.Client({ connectionString: input.url });
await client.connect();
try {
  await client.query("BEGIN");
  await client.query("INSERT INTO app_rows (note) VALUES ($1)", [input.name]);
  const { rows } = await client.query(
    `SELECT ${input.schema}.send_event($1, $2) AS id`,
    [input.name, JSON.stringify(input.data)],
  );
  await client.query(input.commit ? "COMMIT" : "ROLLBACK");
  process.stdout.write(JSON.stringify({ id: rows[0].id }));
} finally {
  await client.end();
}
