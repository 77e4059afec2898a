// The hosts a port listens on: what an auto-TLS certificate must name in its SANs.

export interface ListenSection {
  readonly listenUrls: ReadonlyArray<{ readonly host: string }>;
  readonly address: string;
}

export function listenHosts(section: ListenSection): string[] {
  return section.listenUrls.length > 0 ? section.listenUrls.map((u) => u.host) : [section.address];
}
