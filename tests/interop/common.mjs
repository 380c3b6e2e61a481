// What every client script shares: its one argument (a JSON object the pytest writes),
// a deadline, and the JSON result it prints on stdout for the pytest to assert on.
export const config = JSON.parse(process.argv[2] ?? '{}');

/** Print `result` as one JSON line and exit: `code` 0 when the client ended by itself. */
export function finish(result, code = 0) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

/** Give up after `config.deadline_ms`: print what was received so far, `timed_out`. */
export function deadline(result, onTimeout = () => {}) {
  const timer = setTimeout(() => {
    onTimeout();
    finish({ ...result, timed_out: true }, 3);
  }, config.deadline_ms ?? 30000);
  timer.unref?.();
  return timer;
}

/** A fetch that counts the connections a client opens and what it resumes from, and
 * asks tests/proxy.py to cut connection n after `config.cuts[n]` bytes of its body. */
export function countingFetch(result, headerName) {
  result.connections = 0;
  result.resumed_from = [];
  result.statuses = [];
  const cuts = config.cuts ?? [];
  return async (input, init = {}) => {
    const headers = new Headers(init.headers);
    result.resumed_from.push(headers.get(headerName));
    if (result.connections < cuts.length) {
      headers.set('x-proxy-cut-after', String(cuts[result.connections]));
    }
    result.connections += 1;
    const response = await fetch(input, { ...init, headers });
    result.statuses.push(response.status);
    return response;
  };
}
