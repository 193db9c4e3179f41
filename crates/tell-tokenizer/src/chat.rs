//! Chat templates rendered the way transformers' `apply_chat_template` renders them: Jinja with
//! `trim_blocks` and `lstrip_blocks`, loop controls, Python string methods (minijinja-contrib's
//! `pycompat`), and the globals transformers adds (`raise_exception`, `strftime_now`, `tojson`).

use std::collections::BTreeMap;

use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};

use crate::error::{jinja_message, Result, TokenizerError};
use crate::jinja_fns;

/// Name of the one template held by a [`ChatTemplate`]'s environment. Without an `.html`-like
/// extension, so minijinja does not auto-escape (transformers does not either).
const NAME: &str = "chat_template";

/// One chat message as templates read it: `message['role']`, `message['content']`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile a Jinja chat template; a syntax error is [`TokenizerError::TemplateSyntax`].
    pub fn new(source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let mut env = Environment::new();
        // transformers: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True); the
        // single trailing newline is dropped by both Jinja2 and minijinja by default.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", jinja_fns::raise_exception);
        env.add_function("strftime_now", jinja_fns::strftime_now);
        env.add_filter("tojson", jinja_fns::tojson);
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| TokenizerError::TemplateSyntax(jinja_message(&e)))?;
        Ok(Self { env, source })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render `messages` (anything serializable to a list of maps: [`Message`]s or JSON values).
    /// `special_tokens` are passed as template variables (`bos_token`, `eos_token`, ...), as
    /// transformers passes its `special_tokens_map`; `tools` and `documents` are `none`.
    pub fn render<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
        special_tokens: &BTreeMap<String, String>,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| TokenizerError::TemplateSyntax(jinja_message(&e)))?;
        let mut ctx: BTreeMap<String, Value> = special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ctx.insert("messages".into(), Value::from_serialize(messages));
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        tmpl.render(Value::from(ctx))
            .map_err(|e| TokenizerError::TemplateRender(jinja_message(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> BTreeMap<String, String> {
        BTreeMap::from([("bos_token".to_owned(), "<s>".to_owned())])
    }

    #[test]
    fn renders_with_python_methods_and_loop_controls() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}{% if m.role == 'skip' %}{% continue %}{% endif %}\
             [{{ m['role'].upper() }}]{{ m.content.strip() }}\n{% endfor %}\
             {% if add_generation_prompt %}[ASSISTANT]{% endif %}",
        )
        .unwrap();
        let msgs = [
            Message::user("  hi  "),
            Message::new("skip", "x"),
            Message::assistant("yo"),
        ];
        assert_eq!(
            t.render(&msgs, true, &specials()).unwrap(),
            "<s>[USER]hi\n[ASSISTANT]yo\n[ASSISTANT]"
        );
    }

    #[test]
    fn raise_exception_is_a_render_error() {
        let t = ChatTemplate::new("{{ raise_exception('only user turns') }}").unwrap();
        let err = t
            .render(&[Message::user("a")], false, &specials())
            .unwrap_err();
        assert!(
            matches!(err, TokenizerError::TemplateRender(ref m) if m.contains("only user turns"))
        );
    }

    #[test]
    fn syntax_error_is_typed() {
        let err = ChatTemplate::new("{% for m in messages %}").unwrap_err();
        assert!(matches!(err, TokenizerError::TemplateSyntax(_)), "{err}");
    }

    #[test]
    fn tojson_is_python_style() {
        let t = ChatTemplate::new("{{ messages[0] | tojson }}|{{ messages | tojson(indent=2) }}")
            .unwrap();
        let out = t
            .render(&[Message::user("<é>")], false, &specials())
            .unwrap();
        assert_eq!(
            out,
            "{\"role\": \"user\", \"content\": \"<é>\"}|[\n  {\n    \"role\": \"user\",\n    \"content\": \"<é>\"\n  }\n]"
        );
    }
}
