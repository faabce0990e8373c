// A Transport for unit tests: requests answered by a handler the test sets, and watches the test
// drives event by event. resourceVersions here are opaque strings, as the API server promises.
import type { Transport, TransportResponse, WatchHandle, WatchQuery } from './transport.js';
import { WatchRefused } from './transport.js';

export interface Sent {
  method: string;
  path: string;
  body?: unknown;
}

export type Handler = (request: Sent) => TransportResponse | Promise<TransportResponse>;

export function json(status: number, body: unknown): TransportResponse {
  return { status, body: JSON.stringify(body) };
}

export function status(code: number, reason: string, message = reason): TransportResponse {
  return json(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
}

/** One watch the code under test opened: the test plays the API server's side of it. */
export class FakeWatch {
  aborted = false;
  ended = false;

  constructor(
    readonly path: string,
    readonly query: WatchQuery,
    private readonly onEvent: (type: string, object: unknown) => void,
    private readonly onEnd: (err?: Error) => void,
  ) {}

  send(type: string, object: unknown): void {
    if (!this.ended) this.onEvent(type, object);
  }

  /** The server closes the stream: normally, or with an error. */
  end(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(err);
  }

  /** The server refuses the watch with an HTTP status (e.g. 410 for a too old resourceVersion). */
  refuse(code: number, message: string): void {
    this.end(new WatchRefused(code, this.path, message));
  }
}

export class FakeTransport implements Transport {
  readonly sent: Sent[] = [];
  readonly watches: FakeWatch[] = [];

  constructor(public handler: Handler = () => status(404, 'NotFound')) {}

  async request(method: string, path: string, body?: unknown): Promise<TransportResponse> {
    const request: Sent = { method, path, ...(body === undefined ? {} : { body: structuredClone(body) }) };
    this.sent.push(request);
    return this.handler(request);
  }

  async watch(path: string, query: WatchQuery, onEvent: (type: string, object: unknown) => void, onEnd: (err?: Error) => void): Promise<WatchHandle> {
    const watch = new FakeWatch(path, query, onEvent, onEnd);
    this.watches.push(watch);
    return {
      abort: () => {
        watch.aborted = true;
        watch.end(new Error(`watch ${path}: aborted`));
      },
    };
  }

  /** The watch opened last (the live one). */
  get current(): FakeWatch {
    const watch = this.watches.at(-1);
    if (!watch) throw new Error('no watch was opened');
    return watch;
  }
}

type Stored = { metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };

/**
 * Just enough of an API server for objects written by path: GET, POST to a collection, PUT and
 * DELETE with the resourceVersion check (409 Conflict), each write stamped with a fresh opaque
 * resourceVersion.
 */
export class FakeApiServer {
  readonly objects = new Map<string, Stored>();
  private writes = 0;

  readonly handle: Handler = ({ method, path, body }) => {
    const object = body as Stored | undefined;
    switch (method) {
      case 'GET': {
        const found = this.objects.get(path);
        return found ? json(200, found) : status(404, 'NotFound');
      }
      case 'POST': {
        const at = `${path}/${object!.metadata.name}`;
        if (this.objects.has(at)) return status(409, 'AlreadyExists');
        return json(201, this.store(at, object!));
      }
      case 'PUT': {
        const current = this.objects.get(path);
        if (!current) return status(404, 'NotFound');
        if (object!.metadata.resourceVersion !== current.metadata.resourceVersion) return status(409, 'Conflict', 'the object has been modified');
        return json(200, this.store(path, object!));
      }
      case 'DELETE': {
        const current = this.objects.get(path);
        if (!current) return status(404, 'NotFound');
        const preconditions = (body as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined)?.preconditions;
        if (preconditions?.resourceVersion !== undefined && preconditions.resourceVersion !== current.metadata.resourceVersion) return status(409, 'Conflict', 'the object has been modified');
        this.objects.delete(path);
        return json(200, current);
      }
      default:
        return status(405, 'MethodNotAllowed');
    }
  };

  /** Stores `object` at `path` as a write by anyone would. */
  store(path: string, object: Stored): Stored {
    // Opaque and deliberately unordered: a later write may well compare "smaller".
    const resourceVersion = `${'zyxwvutsrq'[this.writes % 10]}${(this.writes += 1)}`;
    const stored = structuredClone({ ...object, metadata: { ...object.metadata, resourceVersion } });
    this.objects.set(path, stored);
    return structuredClone(stored);
  }
}
