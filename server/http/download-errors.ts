/** The error answers of the download links: JSON bodies like the API's, never cached. */
import type { ServerResponse } from 'node:http';
import type { Sha256 } from '../../storage/digest.js';
import { AppError, errorBody } from '../errors.js';
import type { DownloadRefusal } from './download-registry.js';

/** Seconds a refused client is asked to wait before trying again. */
const RETRY_AFTER_SECONDS = 30;

export function sendError(res: ServerResponse, err: AppError): void {
  const body = JSON.stringify(errorBody(err));
  res.removeHeader('Content-Disposition');
  res.removeHeader('Accept-Ranges');
  res.writeHead(err.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** 503 with Retry-After: a refused download never starts, so the client never mistakes it for a short file. */
export function sendRefusal(res: ServerResponse, refusal: DownloadRefusal): void {
  res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
  const message =
    refusal.scope === 'total'
      ? `this mirror is serving its maximum of ${refusal.limit} downloads; try again in ${RETRY_AFTER_SECONDS} s`
      : `this client already has ${refusal.limit} downloads running; try again in ${RETRY_AFTER_SECONDS} s`;
  sendError(res, new AppError('TOO_MANY_DOWNLOADS', message, { scope: refusal.scope, limit: refusal.limit }));
}

export function blobUnknown(sha256: Sha256): AppError {
  return new AppError('BLOB_UNKNOWN', `no package with sha256 ${sha256} is stored here`);
}

export function unavailable(sha256: Sha256, state: string): AppError {
  return new AppError(
    'BLOB_UNAVAILABLE',
    state === 'missing'
      ? `the package ${sha256} is registered but its file is missing; the administrator has been told`
      : `the package ${sha256} failed its integrity check and is withheld until it is re-imported`,
    { state },
  );
}
