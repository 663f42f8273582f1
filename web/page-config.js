// What both views share: the config a stack writes (config.json), language names, links.

/** @returns {Promise<{websocketUrl: string, auth: object, heartbeatIntervalSeconds: number, speakerReconnectGraceSeconds: number, sourceLanguages: string[], targetLanguages: string[], statusIntervalSeconds?: number}>} */
export async function loadConfig() {
  const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json answered ${response.status}`);
  return response.json();
}

/** A language's name in that language, capitalised as it would start a sentence ("Español"). */
export function ownName(code) {
  try {
    const name = new Intl.DisplayNames([code], { type: "language" }).of(code);
    if (name && name !== code) return name.charAt(0).toLocaleUpperCase(code) + name.slice(1);
  } catch {
    // an engine without this language's data
  }
  return code;
}

/** Fills a <select> with languages by their own names, sorted the way a reader expects. */
export function fillLanguages(select, codes, chosen) {
  const options = codes.map((code) => ({ code, name: ownName(code) }));
  options.sort((a, b) => a.name.localeCompare(b.name));
  select.replaceChildren(
    ...options.map(({ code, name }) => {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = name;
      option.lang = code;
      return option;
    }),
  );
  if (chosen && codes.includes(chosen)) select.value = chosen;
}

/** The listener view's address for a session: what the QR code and the short link open. */
export function listenerLink(sessionId) {
  const url = new URL("./", document.baseURI);
  url.searchParams.set("session", sessionId);
  return url.href;
}

/** The heartbeat settings the client should use for the stack's interval. */
export function heartbeatOptions(config) {
  const interval = Number(config.heartbeatIntervalSeconds) || 30;
  return { heartbeatIntervalSeconds: interval, heartbeatAckTimeoutSeconds: Math.min(10, Math.max(5, interval * 2)) };
}

/** Shows exactly one of the views named by `ids`. */
export function showOnly(ids, visible) {
  for (const id of ids) document.getElementById(id).hidden = id !== visible;
}
