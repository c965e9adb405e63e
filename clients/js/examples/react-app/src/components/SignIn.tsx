import { useState, type FormEvent } from "react";
import { devSignIn, type Session } from "../session";
import { useMutation } from "../mutation";
import { Field, FormError } from "./Field";

/** Dev-mode sign-in: a user name is enough (`POST /api/v1/dev/token`). */
export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [user, setUser] = useState("");
  const signIn = useMutation();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void signIn.run(async () => onSignedIn(await devSignIn(user.trim())));
  };

  return (
    <div className="signin">
      <form className="card" onSubmit={submit} data-testid="signin-form">
        <h1>Prompt builder</h1>
        <p className="hint">Development mode: a user name is enough.</p>
        <Field label="User" name="user" failure={signIn.failure}>
          <input
            name="user"
            value={user}
            autoComplete="username"
            autoFocus
            disabled={signIn.pending}
            onChange={(e) => setUser(e.target.value)}
          />
        </Field>
        <FormError failure={signIn.failure} fields={["user"]} />
        <button type="submit" className="primary" disabled={signIn.pending}>
          Sign in
        </button>
      </form>
    </div>
  );
}
