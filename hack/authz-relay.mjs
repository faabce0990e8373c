// A TCP relay at a fixed loopback address for the local API server's authorization webhook.
// The API server reads its webhook's address once, at start; the operator it should ask moves
// (each test suite starts its own, on a free port; the chart's runs in a pod). The relay reads
// where to go from a file on every new connection. No file, or nothing listening there: the
// connection is dropped and the API server refuses the request (failurePolicy Deny).
// TLS passes through untouched: the API server and the operator authenticate each other.
// Usage: node hack/authz-relay.mjs <port> <target-file>
import { readFileSync, watchFile } from 'node:fs';
import { connect, createServer } from 'node:net';

const [port, targetFile] = process.argv.slice(2);

function target() {
  try {
    const [host, targetPort] = readFileSync(targetFile, 'utf8').trim().split(/:(?=\d+$)/);
    return host && targetPort ? { host, port: Number(targetPort) } : undefined;
  } catch {
    return undefined;
  }
}

const open = new Set();
const server = createServer((client) => {
  const to = target();
  if (!to) return client.destroy();
  const upstream = connect(to);
  const end = () => {
    open.delete(end);
    client.destroy();
    upstream.destroy();
  };
  open.add(end);
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  client.pipe(upstream).pipe(client);
});
server.listen(Number(port), '127.0.0.1');
// A new target ends the connections to the old one: the API server keeps its connections open for
// reuse and would go on asking an operator that is no longer the one in charge.
watchFile(targetFile, { interval: 100 }, () => [...open].forEach((end) => end()));
process.on('SIGTERM', () => process.exit(0));
