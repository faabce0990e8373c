// An agent that keeps using its token — a request every 5 ms — while something ends its grant:
// how long from the trigger until the API server first answers it with a given status. A token in
// use is what users feel: kube-apiserver caches a successful authentication for 10 s, so a token
// presented before keeps authenticating after its ServiceAccount is gone.
import type { Env } from './cluster.js';
import { sleep } from './stats.js';

export interface Refusal {
  /** Trigger to the first response with the status, in ms. */
  ms: number;
  /** That response's body (which authorizer refused, and why). */
  body: string;
}

export async function timeToRefusal(env: Env, ns: string, token: string, trigger: () => Promise<unknown>, status: 401 | 403, timeoutMs = 30_000): Promise<Refusal> {
  const at: { trigger?: number; refusal?: Refusal } = {};
  const agent = (async () => {
    const deadline = performance.now() + timeoutMs;
    while (at.refusal === undefined && performance.now() < deadline) {
      const sent = performance.now();
      const res = await env.client.call('GET', `/api/v1/namespaces/${ns}/pods?limit=1`, undefined, undefined, token);
      if (at.trigger === undefined && res.status !== 200) throw new Error(`the agent was refused before the trigger: ${res.status} ${res.body.slice(0, 200)}`);
      if (at.trigger !== undefined && res.status === status) at.refusal = { ms: performance.now() - at.trigger, body: res.body };
      await sleep(Math.max(0, 5 - (performance.now() - sent)));
    }
  })();
  await sleep(50);
  at.trigger = performance.now();
  await trigger();
  await agent;
  if (!at.refusal) throw new Error(`the agent was not answered ${status} within ${timeoutMs} ms of the trigger`);
  return at.refusal;
}
