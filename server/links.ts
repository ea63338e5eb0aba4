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
