// The native API as the dashboard calls it: the signed-in key on every request, problems
// (application/problem+json) as ApiError, and an unknown key signing the person out.

const KEY = "loadbay.apiKey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `the server answered ${status}`);
    this.status = status;
    this.code = code || "HTTP_" + status;
  }
}

function headers(extra) {
  const key = session.key;
  return Object.assign(key ? { "X-Api-Key": key } : {}, extra || {});
}

async function problem(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status
  }
  const error = new ApiError(response.status, body.code, body.detail);
  if (response.status === 401) {
    signedOut(error.message);
  }
  return error;
}

function signedOut(reason) {
  session.clear();
  window.dispatchEvent(new CustomEvent("loadbay:signed-out", { detail: reason }));
}

/** The JSON answer of a request to the native API; ApiError when it is refused. */
export async function api(path, { method = "GET", json, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NETWORK", "the server could not be reached; is loadbay running?");
  }
  if (!response.ok) throw await problem(response);
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

/**
 * Send a file (a Blob) with an upload progress callback: onProgress(sent, total).
 * Answers { promise, abort }; the promise gives the JSON answer or rejects with ApiError.
 */
export function upload(path, blob, contentType, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("PUT", path);
    const all = headers({ "Content-Type": contentType });
    for (const [name, value] of Object.entries(all)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : blob.size);
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // keep {}
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      if (xhr.status === 401) signedOut(body.detail);
      reject(new ApiError(xhr.status, body.code, body.detail));
    };
    xhr.onerror = () => reject(new ApiError(0, "NETWORK", "the upload was interrupted; check the connection and try again"));
    xhr.onabort = () => reject(new ApiError(0, "ABORTED", "the upload was stopped"));
    xhr.send(blob);
  });
  return { promise, abort: () => xhr.abort() };
}

/** Download what `path` answers as a file named `filename` (kept by the browser). */
export async function download(path, filename) {
  let response;
  try {
    response = await fetch(path, { headers: headers() });
  } catch {
    throw new ApiError(0, "NETWORK", "the server could not be reached");
  }
  if (!response.ok) throw await problem(response);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return blob.size;
}
