//! Exported methods: the method table, auth levels, argument decoding and `dispatch`.
//!
//! This is the Rust form of Deluge's `@export`. A plugin registers methods named
//! `"<namespace>.<method>"` while it is enabled; every transport (RPC, HTTP, the CLI, an
//! embedding application) calls them through one entry point, [`Exports::dispatch`], with
//! basic-type values only.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::error::{ArgErrorKind, DispatchError};

/// How much a caller is trusted; a method can only be called at or above its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum AuthLevel {
    /// Not logged in.
    None = 0,
    /// May read.
    ReadOnly = 1,
    /// Ordinary user (the default level of an exported method).
    #[default]
    Normal = 5,
    /// Administrator.
    Admin = 10,
}

impl AuthLevel {
    /// The numeric level used on the wire and in auth files.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level for a number; numbers between levels round down (Deluge compares numbers).
    pub fn from_u8(n: u8) -> AuthLevel {
        match n {
            10.. => AuthLevel::Admin,
            5..=9 => AuthLevel::Normal,
            1..=4 => AuthLevel::ReadOnly,
            0 => AuthLevel::None,
        }
    }
}

/// Positional and keyword arguments of one call, with decoding helpers that produce
/// Deluge-style errors naming the argument.
#[derive(Debug, Clone, Default)]
pub struct Args {
    method: String,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
}

impl Args {
    /// Wraps the arguments of a call to `method`.
    pub fn new(method: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Args {
            method: method.into(),
            args,
            kwargs,
        }
    }

    /// The full name of the method being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Checks the call against a parameter list: no more positional arguments than
    /// `params`, no unknown keywords, no parameter given twice, and the first `required`
    /// parameters present. Python's `TypeError` wording.
    pub fn expect(&self, params: &[&str], required: usize) -> Result<(), DispatchError> {
        if self.args.len() > params.len() {
            return Err(self.type_error(
                "*args",
                format!(
                    "takes {} positional argument{} but {} were given",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    self.args.len()
                ),
            ));
        }
        for key in self.kwargs.keys() {
            match params.iter().position(|p| p == key) {
                None => return Err(self.type_error(key, "unexpected keyword argument".to_string())),
                Some(i) if i < self.args.len() => {
                    return Err(self.type_error(key, "got multiple values".to_string()))
                }
                Some(_) => {}
            }
        }
        for (i, p) in params.iter().enumerate().take(required) {
            if self.get(i, p).is_none() {
                return Err(self.type_error(p, "missing required argument".to_string()));
            }
        }
        Ok(())
    }

    /// The argument at position `index` or keyword `name`, if given.
    pub fn get(&self, index: usize, name: &str) -> Option<&Value> {
        self.args.get(index).or_else(|| self.kwargs.get(name))
    }

    /// A required string argument.
    pub fn str(&self, index: usize, name: &str) -> Result<&str, DispatchError> {
        match self.required(index, name)? {
            Value::String(s) => Ok(s),
            other => Err(self.type_error(name, format!("expected a string, got {}", kind(other)))),
        }
    }

    /// A required non-negative integer argument.
    pub fn u64(&self, index: usize, name: &str) -> Result<u64, DispatchError> {
        match self.required(index, name)? {
            Value::Number(n) => n.as_u64().ok_or_else(|| {
                self.value_error(name, format!("expected a non-negative integer, got {n}"))
            }),
            other => {
                Err(self.type_error(name, format!("expected an integer, got {}", kind(other))))
            }
        }
    }

    /// A required dict argument.
    pub fn dict(&self, index: usize, name: &str) -> Result<&Map<String, Value>, DispatchError> {
        match self.required(index, name)? {
            Value::Object(m) => Ok(m),
            other => Err(self.type_error(name, format!("expected a dict, got {}", kind(other)))),
        }
    }

    /// A required list-of-strings argument.
    pub fn str_list(&self, index: usize, name: &str) -> Result<Vec<&str>, DispatchError> {
        match self.required(index, name)? {
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        self.type_error(name, format!("expected strings, got {}", kind(v)))
                    })
                })
                .collect(),
            other => Err(self.type_error(
                name,
                format!("expected a list of strings, got {}", kind(other)),
            )),
        }
    }

    fn required(&self, index: usize, name: &str) -> Result<&Value, DispatchError> {
        self.get(index, name)
            .ok_or_else(|| self.type_error(name, "missing required argument".to_string()))
    }

    /// A `TypeError` naming `arg`.
    pub fn type_error(&self, arg: &str, reason: String) -> DispatchError {
        self.error(arg, reason, ArgErrorKind::Type)
    }

    /// A `ValueError` naming `arg`.
    pub fn value_error(&self, arg: &str, reason: String) -> DispatchError {
        self.error(arg, reason, ArgErrorKind::Value)
    }

    fn error(&self, arg: &str, reason: String, kind: ArgErrorKind) -> DispatchError {
        DispatchError::BadArgument {
            method: self.method.clone(),
            arg: arg.to_string(),
            reason,
            kind,
        }
    }
}

/// The JSON type name of a value, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The future an exported method returns.
pub type MethodFuture = Pin<Box<dyn Future<Output = Result<Value, DispatchError>> + Send>>;

/// An exported method's body.
pub type Handler = Arc<dyn Fn(Args) -> MethodFuture + Send + Sync>;

struct Method {
    owner: String,
    level: AuthLevel,
    handler: Handler,
}

/// The table of exported methods, shared by the plugin host and every transport.
#[derive(Clone, Default)]
pub struct Exports {
    methods: Arc<RwLock<HashMap<String, Method>>>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("methods", &self.method_list())
            .finish()
    }
}

impl Exports {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `name` for `owner` (replacing a method of the same name).
    pub fn register(&self, owner: &str, name: String, level: AuthLevel, handler: Handler) {
        let method = Method {
            owner: owner.to_string(),
            level,
            handler,
        };
        self.write().insert(name, method);
    }

    /// Removes every method registered by `owner`.
    pub fn remove_owner(&self, owner: &str) {
        self.write().retain(|_, m| m.owner != owner);
    }

    /// The exported method names, sorted.
    pub fn method_list(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// The auth level `method` needs, if it is exported.
    pub fn level_of(&self, method: &str) -> Option<AuthLevel> {
        self.read().get(method).map(|m| m.level)
    }

    /// Calls `method` with basic-type arguments on behalf of a caller at `caller`'s level.
    ///
    /// ```
    /// # tokio_test::block_on(async {
    /// use torrent_stats::export::{AuthLevel, Exports};
    /// let exports = Exports::new();
    /// let err = exports
    ///     .dispatch("stats.get_totals", vec![], Default::default(), AuthLevel::Admin)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.exception_name(), "AttributeError");
    /// # });
    /// ```
    pub async fn dispatch(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        caller: AuthLevel,
    ) -> Result<Value, DispatchError> {
        let (level, handler) = {
            let table = self.read();
            let entry = table
                .get(method)
                .ok_or_else(|| DispatchError::UnknownMethod(method.to_string()))?;
            (entry.level, entry.handler.clone())
        };
        if caller < level {
            return Err(DispatchError::NotAuthorized {
                method: method.to_string(),
                required: level.as_u8(),
                have: caller.as_u8(),
            });
        }
        handler(Args::new(method, args, kwargs)).await
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Method>> {
        self.methods.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Method>> {
        self.methods.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A plugin's handle on the method table: registers under its namespace, and everything it
/// registers is removed by the host when the plugin is disabled.
#[derive(Clone, Debug)]
pub struct ExportScope {
    owner: String,
    namespace: String,
    exports: Exports,
}

impl ExportScope {
    /// A scope registering `"<namespace>.<name>"` methods owned by plugin `owner`.
    pub fn new(exports: Exports, owner: &str, namespace: &str) -> Self {
        ExportScope {
            owner: owner.to_string(),
            namespace: namespace.to_string(),
            exports,
        }
    }

    /// Exports `name` at the default level (NORMAL).
    pub fn export<F, Fut>(&self, name: &str, f: F)
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, DispatchError>> + Send + 'static,
    {
        self.export_at(name, AuthLevel::Normal, f)
    }

    /// Exports `name` at auth level `level`.
    pub fn export_at<F, Fut>(&self, name: &str, level: AuthLevel, f: F)
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, DispatchError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |args| Box::pin(f(args)));
        self.exports.register(
            &self.owner,
            format!("{}.{}", self.namespace, name),
            level,
            handler,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Exports {
        let exports = Exports::new();
        let scope = ExportScope::new(exports.clone(), "Demo", "demo");
        scope.export("echo", |args: Args| async move {
            args.expect(&["text"], 1)?;
            Ok(json!(args.str(0, "text")?))
        });
        scope.export_at("wipe", AuthLevel::Admin, |_args| async { Ok(Value::Null) });
        exports
    }

    #[tokio::test]
    async fn dispatch_checks_names_levels_and_args() {
        let t = table();
        let ok = t
            .dispatch(
                "demo.echo",
                vec![json!("hi")],
                Map::new(),
                AuthLevel::Normal,
            )
            .await;
        assert_eq!(ok.unwrap(), json!("hi"));
        let mut kw = Map::new();
        kw.insert("text".into(), json!("kw"));
        assert_eq!(
            t.dispatch("demo.echo", vec![], kw, AuthLevel::Normal)
                .await
                .unwrap(),
            json!("kw")
        );
        let e = t
            .dispatch("demo.echo", vec![json!(1)], Map::new(), AuthLevel::Normal)
            .await
            .unwrap_err();
        assert_eq!(e.exception_name(), "TypeError");
        assert!(e.to_string().contains("'text'"), "{e}");
        let e = t
            .dispatch("demo.echo", vec![], Map::new(), AuthLevel::Normal)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let e = t
            .dispatch(
                "demo.echo",
                vec![json!("a"), json!("b")],
                Map::new(),
                AuthLevel::Normal,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("positional"), "{e}");
        let e = t
            .dispatch("demo.wipe", vec![], Map::new(), AuthLevel::Normal)
            .await
            .unwrap_err();
        assert_eq!(e.exception_name(), "NotAuthorizedError");
        let e = t
            .dispatch("demo.nope", vec![], Map::new(), AuthLevel::Admin)
            .await
            .unwrap_err();
        assert_eq!(e.exception_name(), "AttributeError");
        t.remove_owner("Demo");
        assert!(t.method_list().is_empty());
    }

    #[test]
    fn levels_round_down() {
        assert_eq!(AuthLevel::from_u8(7), AuthLevel::Normal);
        assert_eq!(AuthLevel::from_u8(200), AuthLevel::Admin);
        assert_eq!(AuthLevel::from_u8(0), AuthLevel::None);
    }
}
