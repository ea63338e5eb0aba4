/**
 * The XML of Parallels Desktop update feeds, read with saxes (a strict, maintained SAX parser) into a small
 * element tree and written back out. A feed comes from the network, so the reader refuses what XML bombs need:
 * a DOCTYPE (where entities are declared) ends the parse at once, saxes expands no entity it was not told of,
 * and the depth, the number of elements and the text are capped.
 */
import { SaxesParser } from 'saxes';
import { AppError } from '../../errors.js';

export interface XmlElement {
  name: string;
  attributes: Array<[string, string]>;
  children: XmlNode[];
}

/** Text is a plain string; comments and processing instructions are not kept. */
export type XmlNode = XmlElement | string;

export const FEED_LIMITS = {
  /** The official feeds are a few KiB; this leaves room for many versions and every locale's description. */
  maxBytes: 4 * 1024 * 1024,
  maxDepth: 16,
  maxElements: 50_000,
} as const;

function invalid(what: string, detail: string): AppError {
  return new AppError('FEED_INVALID', `${what} is not a usable update feed: ${detail}`);
}

/** Parses `text` into its root element, or throws FEED_INVALID naming `what` (the feed's URL or file). */
export function parseXml(text: string, what: string): XmlElement {
  if (Buffer.byteLength(text) > FEED_LIMITS.maxBytes)
    throw invalid(what, `it is larger than ${FEED_LIMITS.maxBytes} bytes`);
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  let elements = 0;
  // Throwing from a callback ends write() at once: a refused feed is never read to its end (a flood of
  // undefined entities or a large DTD would otherwise cost seconds of work after the first error).
  const fail = (detail: string): never => {
    throw invalid(what, detail);
  };
  parser.on('doctype', () =>
    fail('it declares a DOCTYPE, which is refused (a DTD can define entities that expand without bound)'),
  );
  parser.on('opentag', (tag) => {
    elements += 1;
    if (elements > FEED_LIMITS.maxElements) fail(`it has more than ${FEED_LIMITS.maxElements} elements`);
    if (stack.length >= FEED_LIMITS.maxDepth) fail(`its elements nest deeper than ${FEED_LIMITS.maxDepth}`);
    const element: XmlElement = {
      name: tag.name,
      attributes: Object.entries(tag.attributes).map(([k, v]) => [k, String(v)]),
      children: [],
    };
    const parent = stack.at(-1);
    if (parent) parent.children.push(element);
    else root = element;
    stack.push(element);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  const addText = (text: string): void => {
    const parent = stack.at(-1);
    if (!parent) return;
    const last = parent.children.at(-1);
    if (typeof last === 'string') parent.children[parent.children.length - 1] = last + text;
    else parent.children.push(text);
  };
  parser.on('text', addText);
  parser.on('cdata', addText);
  try {
    // Without an error handler saxes throws its first error from write(), which ends the parse there.
    parser.write(text).close();
  } catch (err) {
    if (err instanceof AppError) throw err;
    fail(`malformed XML (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  if (!root) throw invalid(what, 'it holds no element');
  return root;
}

/** The first child element named `name`. */
export function child(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((c): c is XmlElement => typeof c !== 'string' && c.name === name);
}

/** Every child element named `name` (every child element when `name` is omitted). */
export function children(element: XmlElement, name?: string): XmlElement[] {
  return element.children.filter(
    (c): c is XmlElement => typeof c !== 'string' && (name === undefined || c.name === name),
  );
}

/** The element's text (its text children joined), untrimmed. */
export function textOf(element: XmlElement | undefined): string {
  if (!element) return '';
  return element.children.filter((c): c is string => typeof c === 'string').join('');
}

/** A leaf element holding `text`. */
export function leaf(name: string, text: string, attributes: Array<[string, string]> = []): XmlElement {
  return { name, attributes, children: [text] };
}

// A carriage return is written as a reference: a raw one would be read back as a line feed (end-of-line handling).
const escapeText = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
const escapeAttribute = (s: string) =>
  escapeText(s).replace(/"/g, '&quot;').replace(/\t/g, '&#9;').replace(/\n/g, '&#10;');

/** `element` on one line, every text exactly as read (for mixed content, where whitespace is part of the text). */
function inline(element: XmlElement): string {
  const attributes = element.attributes.map(([k, v]) => ` ${k}="${escapeAttribute(v)}"`).join('');
  if (element.children.length === 0) return `<${element.name}${attributes}/>`;
  const inner = element.children.map((c) => (typeof c === 'string' ? escapeText(c) : inline(c))).join('');
  return `<${element.name}${attributes}>${inner}</${element.name}>`;
}

/**
 * Writes `root` as a document. Elements that hold only elements are indented (their whitespace-only text is
 * layout and is replaced); text in leaf elements, and mixed content (text around elements, like markup in a
 * description), is written exactly as it was read.
 */
export function serializeXml(root: XmlElement): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  const write = (element: XmlElement, indent: string): void => {
    const attributes = element.attributes.map(([k, v]) => ` ${k}="${escapeAttribute(v)}"`).join('');
    const elementChildren = children(element);
    const mixed = elementChildren.length > 0 && element.children.some((c) => typeof c === 'string' && c.trim() !== '');
    // An empty text is an empty element, as the reader gives it back (so a tree written and read again is the same).
    if (element.children.length === 0 || (elementChildren.length === 0 && textOf(element) === '')) {
      out.push(`${indent}<${element.name}${attributes}/>\n`);
    } else if (mixed) {
      out.push(`${indent}${inline(element)}\n`);
    } else if (elementChildren.length === 0) {
      out.push(`${indent}<${element.name}${attributes}>${escapeText(textOf(element))}</${element.name}>\n`);
    } else {
      out.push(`${indent}<${element.name}${attributes}>\n`);
      for (const c of elementChildren) write(c, `${indent}  `);
      out.push(`${indent}</${element.name}>\n`);
    }
  };
  write(root, '');
  return out.join('');
}
