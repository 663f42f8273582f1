// Signing a speaker in: the demo user of the local stack, or a Cognito user of a deployed pool.
// Tokens stay in memory (a reload signs in again); every new connection asks for one, and a
// Cognito ID token older than REFRESH_AFTER_MS is renewed with the refresh token first.

const REFRESH_AFTER_MS = 50 * 60 * 1000; // tokens live 1 h; the connection refresh comes at 100 min

export class SignInError extends Error {}

/** @param {{mode: "local", tokenUrl: string, demoEmail: string} | {mode: "cognito", region: string, userPoolClientId: string, endpoint?: string}} auth */
export function createSpeakerAuth(auth) {
  return auth.mode === "cognito" ? new CognitoAuth(auth) : new LocalDemoAuth(auth);
}

class LocalDemoAuth {
  constructor(auth) {
    this.mode = "local";
    this.tokenUrl = new URL(auth.tokenUrl, document.baseURI).href;
    this.email = auth.demoEmail;
    this.signedIn = false;
  }

  async signIn() {
    await this.getToken();
    this.signedIn = true;
  }

  async getToken() {
    let response;
    try {
      response = await fetch(this.tokenUrl, { cache: "no-store" });
    } catch {
      throw new SignInError("Could not reach the local stack. Is `make run` still running?");
    }
    if (!response.ok) throw new SignInError(`The local stack refused a token (${response.status}).`);
    return (await response.text()).trim();
  }
}

class CognitoAuth {
  constructor(auth) {
    this.mode = "cognito";
    this.endpoint = auth.endpoint ?? `https://cognito-idp.${auth.region}.amazonaws.com/`;
    this.clientId = auth.userPoolClientId;
    this.email = null;
    this.signedIn = false;
    this.idToken = null;
    this.refreshToken = null;
    this.issuedAt = 0;
  }

  async signIn({ email, password }) {
    const result = await this._initiate("USER_PASSWORD_AUTH", { USERNAME: email, PASSWORD: password });
    this.email = email;
    this.refreshToken = result.RefreshToken;
    this._keep(result);
    this.signedIn = true;
  }

  async getToken({ forceRefresh = false } = {}) {
    if (!this.signedIn) throw new SignInError("Sign in first.");
    if (forceRefresh || Date.now() - this.issuedAt > REFRESH_AFTER_MS) {
      this._keep(await this._initiate("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: this.refreshToken }));
    }
    return this.idToken;
  }

  _keep(result) {
    this.idToken = result.IdToken;
    this.issuedAt = Date.now();
  }

  async _initiate(flow, parameters) {
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        body: JSON.stringify({ AuthFlow: flow, ClientId: this.clientId, AuthParameters: parameters }),
      });
    } catch {
      throw new SignInError("Could not reach the sign-in service. Check that this device is online.");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const kind = String(body.__type ?? "").split("#").pop();
      if (kind === "NotAuthorizedException" || kind === "UserNotFoundException") throw new SignInError("Wrong email or password.");
      if (kind === "PasswordResetRequiredException") throw new SignInError("This account must reset its password first.");
      throw new SignInError("Sign-in failed. Try again in a moment.");
    }
    if (body.ChallengeName) {
      throw new SignInError("This account must set a permanent password first (see docs/deployment.md).");
    }
    return body.AuthenticationResult;
  }
}
