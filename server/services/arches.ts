/** The two architectures an image offers, and how people call them. */
export const ARCHES = ['arm64', 'x86_64'] as const;
export type Arch = (typeof ARCHES)[number];
export const ARCH_LABELS: Record<Arch, string> = { arm64: 'Apple silicon', x86_64: 'Intel' };
