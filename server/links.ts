/** Builds the public links handed to the portal and to Macs. */
import os from 'node:os';
import type { Config } from '../config/load.js';

export function downloadUrl(baseUrl: string, sha256: string, fileName: string): string {
  return `${baseUrl}/d/${sha256}/${encodeURIComponent(fileName)}`;
}

/**
 * The base URL when no request is at hand (CLI output): MIRROR_PUBLIC_URL, or
 * else this machine's host name and port, which is what Macs on the LAN use.
 */
export function configuredBaseUrl(config: Config): { url: string; guessed: boolean } {
  if (config.publicUrl) return { url: config.publicUrl, guessed: false };
  const host = config.host === '0.0.0.0' || config.host === '::' ? os.hostname() : config.host;
  const port = config.port === 80 ? '' : `:${config.port}`;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}${port}`, guessed: true };
}

/** The base URL for links made while answering a request: MIRROR_PUBLIC_URL, or the request's own origin. */
export function requestBaseUrl(config: Config, requestUrl: string): string {
  if (config.publicUrl) return config.publicUrl;
  return new URL(requestUrl).origin;
}

/** Sent with every link-check request, so the mirror does not count its own checks as downloads. */
export const LINK_CHECK_USER_AGENT = 'goldmirror-link-check/1';

/**
 * Reads at most `maxBytes` of a response body and cancels the rest, so a
 * link that answers with a whole multi-GB package cannot fill memory.
 * Resolves to what was read and whether the body was longer.
 */
export async function readCapped(res: Response, maxBytes: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  if (!res.body) return { bytes: Buffer.alloc(0), truncated: false };
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream (the async iterator's return()).
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    total += chunk.byteLength;
    if (total > maxBytes) return { bytes: Buffer.concat(chunks).subarray(0, maxBytes), truncated: true };
  }
  return { bytes: Buffer.concat(chunks), truncated: false };
}
