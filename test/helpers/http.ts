/**
 * The tests' one raw HTTP client, on node:http: used where fetch (undici)
 * would hide or rewrite things (HEAD bodies, `..` and encoded slashes in
 * paths, an answer that arrives before the upload ended, kept-alive sockets).
 */
import http from 'node:http';
import { Readable } from 'node:stream';

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as UTF-8 text (JSON, error pages). */
  body: string;
  /** The body's exact bytes (downloads). */
  bytes: Buffer;
  /** Whether the request went over a kept-alive socket. */
  reused: boolean;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /**
   * Sent whole (string, Buffer) or streamed with backpressure (chunks, async
   * iterable); without a Content-Length header a streamed body goes chunked.
   */
  body?: string | Buffer | Iterable<string | Buffer> | AsyncIterable<Uint8Array>;
  /** Default false: a fresh connection per request. */
  agent?: http.Agent | false;
  /** The client's source address (127.0.0.x stands for different Macs). */
  localAddress?: string;
}

/**
 * One request; resolves with the whole (small) answer. The path is sent
 * exactly as written in `url`, never normalised.
 */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpReply> {
  const { origin, path } = splitUrl(url);
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: hostname.replace(/^\[(.*)\]$/, '$1'),
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
        localAddress: options.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: bytes.toString('utf8'),
            bytes,
            reused: req.reusedSocket,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else {
      const source = Readable.from(body);
      source.on('error', (err) => req.destroy(err));
      // A dead server must not leave the body generator running.
      req.on('error', () => source.destroy());
      req.on('close', () => source.destroy());
      source.pipe(req);
    }
  });
}

function splitUrl(url: string): { origin: string; path: string } {
  const match = /^(https?:\/\/[^/?#]+)(.*)$/.exec(url);
  if (!match?.[1]) throw new Error(`not an absolute http URL: ${url}`);
  return { origin: match[1], path: match[2] || '/' };
}
