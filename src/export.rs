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

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// How an argument of an exported method was wrong: decides the wire exception name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgErrorKind {
    /// Wrong number of arguments, an unexpected keyword or a value of the wrong type.
    Type,
    /// Right type, unacceptable value (out of range, unknown key, ...).
    Value,
}

/// An exported method could not be called or failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DispatchError {
    /// No method of that name is exported (Deluge: `AttributeError`).
    #[error("RPC call on invalid function: {0}")]
    UnknownMethod(String),
    /// An argument is missing, extra or wrong (Deluge: `TypeError` / `ValueError`).
    #[error("{method}(): argument '{arg}': {reason}")]
    BadArgument {
        /// The full method name.
        method: String,
        /// The argument at fault.
        arg: String,
        /// Why it was rejected.
        reason: String,
        /// Type or value error.
        kind: ArgErrorKind,
    },
    /// The caller's auth level is below the method's (Deluge: `NotAuthorizedError`).
    #[error("{method} needs auth level {required}, caller has {have}")]
    NotAuthorized {
        /// The full method name.
        method: String,
        /// Level the method needs.
        required: u8,
        /// Level the caller has.
        have: u8,
    },
    /// The method ran and failed.
    #[error("{method}: {message}")]
    Plugin {
        /// The full method name.
        method: String,
        /// What went wrong.
        message: String,
    },
    /// The method failed with one of Deluge's own exception classes
    /// (`InvalidTorrentError`, `AddTorrentError`, `DelugeError`, …), which Deluge's clients
    /// show by name.
    #[error("{method}: {class}: {message}")]
    Deluge {
        /// The full method name.
        method: String,
        /// The `deluge.error` class.
        class: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The method exists but this transport cannot answer it (e.g. `daemon.login` called
    /// in-process).
    #[error("{method} is answered by a connection's transport, not through dispatch")]
    TransportOnly {
        /// The full method name.
        method: String,
    },
}

impl DispatchError {
    /// The Python exception class name a Deluge transport reports for this error.
    pub fn exception_name(&self) -> &'static str {
        match self {
            DispatchError::UnknownMethod(_) => "AttributeError",
            DispatchError::BadArgument {
                kind: ArgErrorKind::Type,
                ..
            } => "TypeError",
            DispatchError::BadArgument {
                kind: ArgErrorKind::Value,
                ..
            } => "ValueError",
            DispatchError::NotAuthorized { .. } => "NotAuthorizedError",
            DispatchError::Plugin { .. } => "PluginError",
            DispatchError::TransportOnly { .. } => "AttributeError",
            DispatchError::Deluge { class, .. } => class,
        }
    }
}

/// A method could not be exported.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// The namespace belongs to another owner.
    #[error(
        "namespace {namespace:?} belongs to {owner}; {refused} may not export into it \
         (give the plugin another namespace)"
    )]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
        /// Its owner.
        owner: String,
        /// Who tried to export into it.
        refused: String,
    },
    /// The method is already exported.
    #[error("{method} is already exported")]
    Duplicate {
        /// The full method name.
        method: String,
    },
    /// The name is not `namespace.method`.
    #[error("{name:?} is not a method name of the form namespace.method")]
    BadName {
        /// The name given.
        name: String,
    },
}

/// How much a caller is trusted; a method can only be called at or above its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
#[non_exhaustive]
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

/// Who is calling an exported method: the logged-in user, if any, and their level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account name (`None` for an in-process caller or before login).
    pub user: Option<String>,
    /// The caller's auth level.
    pub level: AuthLevel,
}

impl Caller {
    /// A caller logged in as `user` at `level`.
    pub fn user(user: impl Into<String>, level: AuthLevel) -> Self {
        Caller {
            user: Some(user.into()),
            level,
        }
    }
}

impl From<AuthLevel> for Caller {
    /// An anonymous in-process caller at `level`.
    fn from(level: AuthLevel) -> Self {
        Caller { user: None, level }
    }
}

/// Positional and keyword arguments of one call and who made it, with decoding helpers
/// that produce Deluge-style errors naming the argument.
#[derive(Debug, Clone)]
pub struct Args {
    method: String,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    caller: Caller,
}

impl Args {
    /// Wraps the arguments of a call to `method` by an anonymous ADMIN caller (for tests
    /// and in-process use; [`Exports::dispatch`] passes the real caller).
    pub fn new(method: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Args {
            method: method.into(),
            args,
            kwargs,
            caller: Caller::from(AuthLevel::Admin),
        }
    }

    /// The same arguments on behalf of `caller`.
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// The full name of the method being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Checks the call against a parameter list: no more positional arguments than
    /// `params`, no unknown keywords, no parameter given twice, and the first `required`
    /// parameters present. Python's `TypeError` wording.
    pub fn params(&self, params: &[&str], required: usize) -> Result<(), DispatchError> {
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
            if self.value(i, p).is_none() {
                return Err(self.type_error(p, "missing required argument".to_string()));
            }
        }
        Ok(())
    }

    /// The raw argument at position `index` or keyword `name`, if given.
    pub fn value(&self, index: usize, name: &str) -> Option<&Value> {
        self.args.get(index).or_else(|| self.kwargs.get(name))
    }

    /// A required argument decoded into `T` with serde; a value that does not fit is a
    /// `TypeError` naming the argument.
    ///
    /// ```
    /// use torrent_stats::Args;
    /// use serde_json::json;
    /// let args = Args::new("demo.add", vec![json!([1, 2])], Default::default());
    /// let pair: (u32, u32) = args.get(0, "pair").unwrap();
    /// assert_eq!(pair, (1, 2));
    /// assert_eq!(args.get_or(1, "scale", 10u32).unwrap(), 10);
    /// assert!(args.get::<String>(0, "pair").is_err());
    /// ```
    pub fn get<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, DispatchError> {
        let value = self.required(index, name)?;
        self.decode(value, name)
    }

    /// An optional argument decoded into `T`; `None` when it is absent or `None`.
    pub fn get_opt<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, DispatchError> {
        match self.value(index, name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.decode(value, name).map(Some),
        }
    }

    /// An optional argument decoded into `T`, or `default` when it is absent or `None`.
    pub fn get_or<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
        default: T,
    ) -> Result<T, DispatchError> {
        Ok(self.get_opt(index, name)?.unwrap_or(default))
    }

    fn decode<T: DeserializeOwned>(&self, value: &Value, name: &str) -> Result<T, DispatchError> {
        T::deserialize(value)
            .map_err(|e| self.type_error(name, format!("{e} (got {} {value})", kind(value))))
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
        self.value(index, name)
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

#[derive(Default)]
struct Table {
    methods: HashMap<String, Method>,
    /// Namespace → the owner that first exported into it.
    namespaces: HashMap<String, String>,
}

/// The table of exported methods, shared by the plugin host, the core service and every
/// transport.
///
/// A namespace (the part of a method name before the first `.`) belongs to the owner that
/// first claimed or exported into it until that owner's methods are removed; exports into
/// someone else's namespace are refused.
#[derive(Clone, Default)]
pub struct Exports {
    table: Arc<RwLock<Table>>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("methods", &self.method_list())
            .finish()
    }
}

/// The namespace of a full method name (`"stats"` for `"stats.get_totals"`).
fn namespace_of(method: &str) -> &str {
    method.split_once('.').map_or(method, |(ns, _)| ns)
}

impl Exports {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims `namespace` for `owner` (nothing happens if `owner` already has it).
    pub fn claim(&self, owner: &str, namespace: &str) -> Result<(), ExportError> {
        let mut table = self.write();
        claim(&mut table, owner, namespace)
    }

    /// The owner of `namespace`, if it is claimed.
    pub fn owner_of(&self, namespace: &str) -> Option<String> {
        self.read().namespaces.get(namespace).cloned()
    }

    /// Registers `name` (`"<namespace>.<method>"`) for `owner`. Refused if the namespace
    /// belongs to another owner or the method is already exported.
    pub fn register(
        &self,
        owner: &str,
        name: String,
        level: AuthLevel,
        handler: Handler,
    ) -> Result<(), ExportError> {
        if name.is_empty() || !name.contains('.') || name.starts_with('.') || name.ends_with('.') {
            return Err(ExportError::BadName { name });
        }
        let mut table = self.write();
        claim(&mut table, owner, namespace_of(&name))?;
        if table.methods.contains_key(&name) {
            return Err(ExportError::Duplicate { method: name });
        }
        let method = Method {
            owner: owner.to_string(),
            level,
            handler,
        };
        table.methods.insert(name, method);
        Ok(())
    }

    /// Removes every method registered by `owner` and releases its namespaces.
    pub fn remove_owner(&self, owner: &str) {
        let mut table = self.write();
        table.methods.retain(|_, m| m.owner != owner);
        table.namespaces.retain(|_, o| o != owner);
    }

    /// The exported method names, sorted.
    pub fn method_list(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().methods.keys().cloned().collect();
        names.sort();
        names
    }

    /// The auth level `method` needs, if it is exported.
    pub fn level_of(&self, method: &str) -> Option<AuthLevel> {
        self.read().methods.get(method).map(|m| m.level)
    }

    /// Calls `method` with basic-type arguments on behalf of `caller` (a [`Caller`], or
    /// just an [`AuthLevel`] for an anonymous caller). The method's existence is checked
    /// first, then the caller's level, then the method checks its arguments.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use torrent_stats::{AuthLevel, Exports};
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
        caller: impl Into<Caller>,
    ) -> Result<Value, DispatchError> {
        let caller = caller.into();
        let (level, handler) = {
            let table = self.read();
            let entry = table
                .methods
                .get(method)
                .ok_or_else(|| DispatchError::UnknownMethod(method.to_string()))?;
            (entry.level, entry.handler.clone())
        };
        if caller.level < level {
            return Err(DispatchError::NotAuthorized {
                method: method.to_string(),
                required: level.as_u8(),
                have: caller.level.as_u8(),
            });
        }
        handler(Args::new(method, args, kwargs).with_caller(caller)).await
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn claim(table: &mut Table, owner: &str, namespace: &str) -> Result<(), ExportError> {
    match table.namespaces.get(namespace) {
        Some(holder) if holder != owner => Err(ExportError::NamespaceTaken {
            namespace: namespace.to_string(),
            owner: holder.clone(),
            refused: owner.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            table
                .namespaces
                .insert(namespace.to_string(), owner.to_string());
            Ok(())
        }
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
    /// A scope registering `"<namespace>.<name>"` methods owned by `owner`.
    pub fn new(exports: Exports, owner: &str, namespace: &str) -> Self {
        ExportScope {
            owner: owner.to_string(),
            namespace: namespace.to_string(),
            exports,
        }
    }

    /// The namespace methods are exported into.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Exports `name` at the default level (NORMAL).
    pub fn export<F, Fut>(&self, name: &str, f: F) -> Result<(), ExportError>
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, DispatchError>> + Send + 'static,
    {
        self.export_at(name, AuthLevel::Normal, f)
    }

    /// Exports `name` at auth level `level`.
    pub fn export_at<F, Fut>(&self, name: &str, level: AuthLevel, f: F) -> Result<(), ExportError>
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
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Exports {
        let exports = Exports::new();
        let scope = ExportScope::new(exports.clone(), "Demo", "demo");
        scope
            .export("echo", |args: Args| async move {
                args.params(&["text"], 1)?;
                Ok(json!(args.str(0, "text")?))
            })
            .unwrap();
        scope
            .export_at("wipe", AuthLevel::Admin, |_args| async { Ok(Value::Null) })
            .unwrap();
        scope
            .export("whoami", |args: Args| async move {
                Ok(json!(args.caller().user))
            })
            .unwrap();
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

    #[tokio::test]
    async fn namespaces_belong_to_their_first_owner() {
        let t = table();
        let other = ExportScope::new(t.clone(), "Intruder", "demo");
        let e = other
            .export("echo", |_args| async { Ok(Value::Null) })
            .unwrap_err();
        assert!(
            matches!(&e, ExportError::NamespaceTaken { owner, .. } if owner == "Demo"),
            "{e}"
        );
        let e = other
            .export("new", |_args| async { Ok(Value::Null) })
            .unwrap_err();
        assert!(matches!(e, ExportError::NamespaceTaken { .. }));
        // The owner's methods are untouched, and a duplicate is refused too.
        let own = ExportScope::new(t.clone(), "Demo", "demo");
        assert!(matches!(
            own.export("echo", |_args| async { Ok(Value::Null) }),
            Err(ExportError::Duplicate { .. })
        ));
        let out = t
            .dispatch("demo.echo", vec![json!("x")], Map::new(), AuthLevel::Normal)
            .await
            .unwrap();
        assert_eq!(out, json!("x"));
        // Removing the intruder removes nothing of Demo's.
        t.remove_owner("Intruder");
        assert!(t.method_list().contains(&"demo.echo".to_string()));
        // Once Demo is gone, the namespace is free.
        t.remove_owner("Demo");
        assert_eq!(t.owner_of("demo"), None);
        other
            .export("new", |_args| async { Ok(Value::Null) })
            .unwrap();
        assert_eq!(t.owner_of("demo").as_deref(), Some("Intruder"));
    }

    #[tokio::test]
    async fn handlers_see_their_caller() {
        let t = table();
        let out = t
            .dispatch(
                "demo.whoami",
                vec![],
                Map::new(),
                Caller::user("alice", AuthLevel::Normal),
            )
            .await
            .unwrap();
        assert_eq!(out, json!("alice"));
    }

    #[test]
    fn typed_arguments() {
        let mut kw = Map::new();
        kw.insert("limit".into(), json!(5));
        let a = Args::new("demo.f", vec![json!(["a", "b"]), Value::Null], kw);
        let keys: Vec<String> = a.get(0, "keys").unwrap();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(a.get_opt::<u8>(1, "flag").unwrap(), None);
        assert_eq!(a.get_or(2, "limit", 9u32).unwrap(), 5);
        assert_eq!(a.get_or(3, "other", 9u32).unwrap(), 9);
        let e = a.get::<u64>(0, "keys").unwrap_err();
        assert_eq!(e.exception_name(), "TypeError");
        assert!(e.to_string().contains("'keys'"), "{e}");
        let e = a.get::<u64>(5, "missing").unwrap_err();
        assert!(e.to_string().contains("missing required"), "{e}");
    }

    #[test]
    fn levels_round_down() {
        assert_eq!(AuthLevel::from_u8(7), AuthLevel::Normal);
        assert_eq!(AuthLevel::from_u8(200), AuthLevel::Admin);
        assert_eq!(AuthLevel::from_u8(0), AuthLevel::None);
    }
}
