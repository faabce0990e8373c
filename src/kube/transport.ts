// The one port between the Kubernetes layer and the network: a JSON request and a watch stream.
// KubeApi, the informers and (through KubeApi) leader election and the ledger speak only this,
// so unit tests hand them a fake; rest.ts adapts it to https with a kubeconfig's credentials.

export interface TransportResponse {
  status: number;
  body: string;
}

export interface WatchHandle {
  /** Ends the stream; `onEnd` is called with an error unless it was already called. */
  abort(): void;
}

export type WatchQuery = Record<string, string | number | boolean>;

export interface Transport {
  /** One request; resolves with any HTTP status (callers judge it), rejects only when no answer came. */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<TransportResponse>;
  /**
   * Streams a watch of `path` (`watch=true` is added to `query`): each event is handed to
   * `onEvent` as (type, object). `onEnd` is called once, with an error unless the server closed
   * the stream normally (its timeoutSeconds); a refused watch ends with a WatchRefused.
   */
  watch(path: string, query: WatchQuery, onEvent: (type: string, object: unknown) => void, onEnd: (err?: Error) => void): Promise<WatchHandle>;
}

/** The API server answered a watch request with something other than 200 (410: too old a resourceVersion). */
export class WatchRefused extends Error {
  constructor(
    readonly status: number,
    path: string,
    message: string,
  ) {
    super(`watch ${path}: ${status} ${message}`);
    this.name = 'WatchRefused';
  }
}

/** The message of a Kubernetes Status body, or the raw body. */
export function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    return typeof status.message === 'string' ? status.message : body;
  } catch {
    return body;
  }
}
