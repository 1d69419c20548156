//! The settings' unit tests: precedence, places named in errors, the store
//! sections, and each definition checked against the command line, the
//! config file and docs/configuration.md.

use super::*;
use crate::credentials::config::StoreChoice;
use crate::test_support::env_of;
use std::cell::RefCell;

fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let s = Settings::resolve(&CommonArgs::default(), &env_of(&[])).unwrap();
    assert_eq!(s.deadline, DEFAULT_DEADLINE);
    assert_eq!(s.max_script_bytes, DEFAULT_MAX_SCRIPT_BYTES);
    assert_eq!(s.source, SourceChoice::Auto);
    assert!(!s.tags_files_named);
    assert!(!s.once);
    assert_eq!(s.store.choice, StoreChoice::Auto);
    assert_eq!(s.store.vault.mount, "secret");
    assert_eq!(s.store.vault.kv_version, 2);
    assert!(s.store.vault.approle.is_none());
    assert!(s.store.directory.is_none());
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    let (_dir, path) =
        config("deadline = 30\nmax_script_bytes = \"1M\"\nstate_dir = \"st\"\nsource = \"none\"\n");
    let env = env_of(&[
        ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
        ("TAGSTRAP_DEADLINE", "20"),
    ]);
    let mut args = CommonArgs::default();
    let s = Settings::resolve(&args, &env).unwrap();
    assert_eq!(s.deadline, Duration::from_secs(20), "variable over file");
    assert_eq!(s.max_script_bytes, 1 << 20, "file over default");
    assert_eq!(
        s.state_dir,
        path.parent().unwrap().join("st"),
        "relative to the config file"
    );
    assert_eq!(s.source, SourceChoice::None);
    args.deadline = Some("10".into());
    let s = Settings::resolve(&args, &env).unwrap();
    assert_eq!(s.deadline, Duration::from_secs(10), "flag over variable");
}

#[test]
fn bad_values_name_where_they_came_from() {
    let args = CommonArgs {
        deadline: Some("soon".into()),
        ..CommonArgs::default()
    };
    let err = Settings::resolve(&args, &env_of(&[])).unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert_eq!(err.setting_place(), Some("--deadline"), "{err}");

    let err = Settings::resolve(
        &CommonArgs::default(),
        &env_of(&[("TAGSTRAP_MAX_SCRIPT_BYTES", "lots")]),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert_eq!(err.setting_place(), Some("$TAGSTRAP_MAX_SCRIPT_BYTES"));

    let (_dir, path) = config("log_format = \"xml\"\n");
    let err = Settings::resolve(
        &CommonArgs::default(),
        &env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert_eq!(
        err.setting_place(),
        Some(format!("log_format in {}", path.display()).as_str())
    );
}

#[test]
fn bad_config_files_are_exit_78_with_the_line() {
    for (text, needle) in [
        ("deadline = 10\nbogus = 1\n", "line 2"),
        ("deadline = [\n", "line"),
        ("[vault]\nkv_version = 3\n", "kv_version"),
        // A value of the wrong type, with its line.
        (
            "once = true\ndeadline = true\n",
            "(line 2): expected a number or a string",
        ),
        ("once = \"yes\"\n", "line 1"),
        // pass_env is a list of names, at the top level only.
        ("pass_env = \"LANG\"\n", "line 1"),
        ("[vault]\npass_env = [\"LANG\"]\n", "line 2"),
    ] {
        let (_dir, path) = config(text);
        let args = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let err = Settings::resolve(&args, &env_of(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{text}");
        assert!(err.message().contains(needle), "{text}: {err}");
    }
    let args = CommonArgs {
        config: Some("/nonexistent/tagstrap.toml".into()),
        ..CommonArgs::default()
    };
    assert_eq!(
        Settings::resolve(&args, &env_of(&[]))
            .unwrap_err()
            .exit_code(),
        78
    );
}

#[test]
fn tags_come_from_one_place_with_their_origin() {
    let (_dir, path) = config("[tags]\n\"rs_agent:type\" = \"from-file\"\n");
    let env = env_of(&[
        ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
        ("TAGSTRAP_TAG", "rs_agent:type=from-env\nrs_agent:x=y\n"),
    ]);
    let s = Settings::resolve(&CommonArgs::default(), &env).unwrap();
    assert_eq!(s.tags.len(), 2);
    assert_eq!(s.tags[0].origin, Origin::Environment);
    let s = Settings::resolve(
        &CommonArgs::default(),
        &env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(s.tags[0].value, "from-file");
    let args = CommonArgs {
        tags: vec!["rs_agent:type=flag".into()],
        ..CommonArgs::default()
    };
    let s = Settings::resolve(&args, &env).unwrap();
    assert_eq!(
        (s.tags.len(), s.tags[0].origin.clone()),
        (1, Origin::CommandLine)
    );
}

#[test]
fn sizes_and_seconds_parse() {
    assert_eq!(parse_bytes("16M").unwrap(), 16 << 20);
    assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
    assert_eq!(parse_bytes("100").unwrap(), 100);
    for bad in ["", "0", "-1", "1T", "M", "99999999999999999999"] {
        assert!(parse_bytes(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
    for bad in ["-1", "NaN", "inf", "x"] {
        assert!(parse_seconds(bad).is_err(), "{bad}");
    }
}

#[test]
fn vault_settings_prefer_the_environment() {
    let (_dir, path) =
        config("[vault]\naddress = \"http://file:8200\"\nmount = \"kv\"\nfield = \"password\"\n");
    let env = env_of(&[
        ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
        ("VAULT_ADDR", "http://env-1:8200, http://env-2:8200"),
        ("VAULT_TOKEN", "t0ken"),
    ]);
    let s = Settings::resolve(&CommonArgs::default(), &env).unwrap();
    let v = &s.store.vault;
    assert_eq!(v.addresses, ["http://env-1:8200", "http://env-2:8200"]);
    assert_eq!(v.addresses_from, "$VAULT_ADDR");
    assert_eq!((v.mount.as_str(), v.field.as_str()), ("kv", "password"));
    assert!(!format!("{s:?}").contains("t0ken"));
}

#[test]
fn store_sections_of_the_config_file_are_read() {
    let (dir, path) = config(
        "store = \"vault\"\n[vault]\naddress = [\"http://a:8200\", \"http://b:8200\"]\n\
         token_file = \"token\"\n[vault.approle]\nrole_id = \"r-1\"\nsecret_id_file = \"sid\"\n\
         [directory]\npath = \"creds\"\n",
    );
    let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
    let s = Settings::resolve(&CommonArgs::default(), &env)
        .unwrap()
        .store;
    assert_eq!(s.choice, StoreChoice::Vault);
    assert_eq!(s.vault.addresses, ["http://a:8200", "http://b:8200"]);
    assert!(s.vault.addresses_from.starts_with("[vault] address in"));
    assert_eq!(s.vault.token_file, Some(dir.path().join("token")));
    let role = s.vault.approle.unwrap();
    assert_eq!(role.mount, "approle");
    assert_eq!(role.role_id.as_deref(), Some("r-1"));
    assert_eq!(role.secret_id_file, Some(dir.path().join("sid")));
    assert_eq!(s.directory.unwrap().0, dir.path().join("creds"));
    assert!(
        !s.vault.insecure_http,
        "plain http:// is allowed only when asked for"
    );

    let env = env_of(&[
        ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
        ("TAGSTRAP_STORE", "directory"),
        ("TAGSTRAP_CREDENTIALS_DIR", "/run/c"),
        ("TAGSTRAP_VAULT_ROLE_ID", "r-2"),
        ("TAGSTRAP_VAULT_SECRET_ID_FILE", "/run/sid"),
        ("TAGSTRAP_VAULT_TOKEN_FILE", "/run/token"),
    ]);
    let s = Settings::resolve(&CommonArgs::default(), &env)
        .unwrap()
        .store;
    assert_eq!(s.choice, StoreChoice::Directory);
    assert_eq!(
        s.directory,
        Some(("/run/c".into(), "$TAGSTRAP_CREDENTIALS_DIR".into()))
    );
    let role = s.vault.approle.unwrap();
    assert_eq!(role.role_id.as_deref(), Some("r-2"));
    assert_eq!(role.secret_id_file, Some("/run/sid".into()));
    assert_eq!(s.vault.token_file, Some("/run/token".into()));
}

#[test]
fn insecure_http_is_read_from_the_vault_section_only() {
    let (_dir, path) =
        config("[vault]\naddress = \"http://vault.corp:8200\"\ninsecure_http = true\n");
    let env = env_of(&[
        ("TAGSTRAP_CONFIG", path.to_str().unwrap()),
        ("VAULT_ADDR", "http://other.corp:8200"),
    ]);
    let s = Settings::resolve(&CommonArgs::default(), &env)
        .unwrap()
        .store;
    assert!(s.vault.insecure_http);
    assert_eq!(s.vault.addresses, ["http://other.corp:8200"]);
    let (_dir, path) = config("insecure_http = true\n");
    let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
    let err = Settings::resolve(&CommonArgs::default(), &env).unwrap_err();
    assert_eq!(err.exit_code(), 78, "not a top-level key");
}

#[test]
fn systemd_credentials_are_the_fallback_directory_and_token_file() {
    let env = env_of(&[("CREDENTIALS_DIRECTORY", "/run/credentials/tagstrap.service")]);
    let s = Settings::resolve(&CommonArgs::default(), &env)
        .unwrap()
        .store;
    let dir = PathBuf::from("/run/credentials/tagstrap.service");
    assert_eq!(
        s.directory,
        Some((dir.clone(), "$CREDENTIALS_DIRECTORY".into()))
    );
    assert_eq!(s.vault.default_token_file, Some(dir.join("vault-token")));
}

#[test]
fn every_variable_read_for_the_store_is_recorded_with_whether_it_is_a_secret() {
    // Every name resolution asks the environment for, seen from outside.
    let asked = RefCell::new(Vec::<String>::new());
    let env = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        None
    };
    for store in ["auto", "vault", "directory"] {
        let (_dir, path) = config(&format!("store = \"{store}\"\n"));
        let args = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let s = Settings::resolve(&args, &env).unwrap();
        let recorded = &s.store.variables;
        let secret = |name: &str| recorded.iter().find(|v| v.name == name).map(|v| v.secret);
        for name in [
            "VAULT_TOKEN",
            "TAGSTRAP_VAULT_TOKEN_FILE",
            "TAGSTRAP_VAULT_SECRET_ID_FILE",
            "TAGSTRAP_VAULT_ROLE_ID",
            "CREDENTIALS_DIRECTORY",
            "TAGSTRAP_CREDENTIALS_DIR",
        ] {
            assert_eq!(secret(name), Some(true), "{store}: {name}");
        }
        for name in [
            "VAULT_ADDR",
            "VAULT_NAMESPACE",
            "VAULT_CACERT",
            "TAGSTRAP_STORE",
        ] {
            assert_eq!(secret(name), Some(false), "{store}: {name}");
        }
        // A variable read for anything but tagstrap's own settings went
        // through the record: the script's environment cannot miss it.
        for name in asked.borrow().iter() {
            assert!(
                name.starts_with("TAGSTRAP_") || recorded.iter().any(|v| v.name == name),
                "{name} is read but not recorded"
            );
        }
    }
}

#[test]
fn pass_env_is_read_from_the_file() {
    let (_dir, path) = config("pass_env = [\"VAULT_NAMESPACE\", \"LANG\"]\n");
    let args = CommonArgs {
        config: Some(path.clone()),
        ..CommonArgs::default()
    };
    let s = Settings::resolve(&args, &env_of(&[])).unwrap();
    assert_eq!(s.pass_env, ["VAULT_NAMESPACE", "LANG"]);
    assert_eq!(s.pass_env_from, format!("pass_env in {}", path.display()));
    let s = Settings::resolve(&CommonArgs::default(), &env_of(&[])).unwrap();
    assert!(s.pass_env.is_empty());
}

#[test]
fn bad_store_settings_name_their_place() {
    let err = Settings::resolve(
        &CommonArgs::default(),
        &env_of(&[("TAGSTRAP_STORE", "keyring")]),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert_eq!(err.setting_place(), Some("$TAGSTRAP_STORE"));
    for text in [
        "store = \"keyring\"\n",
        "[vault]\naddress = 8200\n",
        "[vault.approle]\nsecret_id = \"inline\"\n",
        "[directory]\nmode = 1\n",
        "[vault]\ninsecure_http = \"yes\"\n",
    ] {
        let (_dir, path) = config(text);
        let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
        let err = Settings::resolve(&CommonArgs::default(), &env).unwrap_err();
        assert_eq!(err.exit_code(), 78, "{text}");
    }
}

/// Every setting tagstrap or a store defines.
fn every_definition() -> Vec<&'static Setting> {
    defs::ALL
        .iter()
        .copied()
        .chain(crate::credentials::config::definitions())
        .collect()
}

#[test]
fn every_flag_is_a_definition_and_every_definition_with_a_flag_is_a_flag() {
    let command = crate::cli::command();
    let mut flags = Vec::new();
    for sub in command.get_subcommands() {
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let id = arg.get_id().as_str();
            let def = defs::ALL
                .iter()
                .find(|d| d.key == id)
                .unwrap_or_else(|| panic!("--{long} ({id}) has no definition in settings::defs"));
            assert_eq!(def.flag, Some(format!("--{long}").as_str()), "{id}");
            // The help is generated from the definition.
            let help = arg.get_help().unwrap().to_string();
            assert!(help.ends_with(&def.help_suffix()), "--{long}: {help}");
            flags.push(id.to_string());
        }
    }
    for def in defs::ALL.iter().filter(|d| d.flag.is_some()) {
        assert!(flags.iter().any(|f| f == def.key), "{} is no flag", def.key);
    }
}

#[test]
fn the_config_file_keys_are_the_definitions_keys() {
    // serde lists the keys it accepts when it refuses one.
    let err = toml::from_str::<file::ConfigFile>("no_such_key = 1\n").unwrap_err();
    let message = err.message();
    let listed = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("{message}"))
        .1;
    let mut accepted: Vec<&str> = listed
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    let mut defined: Vec<&str> = defs::ALL
        .iter()
        .filter(|d| d.in_file != crate::util::setting::InFile::No)
        .map(|d| d.key)
        .chain(file::STORE_KEYS)
        .collect();
    accepted.sort_unstable();
    defined.sort_unstable();
    assert_eq!(accepted, defined);
}

#[test]
fn docs_configuration_md_has_a_row_for_every_definition() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let rows: Vec<&str> = docs.lines().filter(|l| l.starts_with('|')).collect();
    for def in every_definition() {
        // The row that names it: by its variable, else by its key.
        let name = match def.var {
            Some(var) => format!("`{var}`"),
            None => format!("`{}", def.key),
        };
        let row = rows
            .iter()
            .find(|r| {
                r.contains(&name)
                    || def.var.is_some_and(|v| {
                        r.contains(&format!("`${v}`")) || r.contains(&format!("`{v}="))
                    })
            })
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for {name}"));
        if let Some(flag) = def.flag {
            assert!(row.contains(&format!("`{flag}")), "{row}: {flag}");
        }
        match def.in_file {
            crate::util::setting::InFile::No => {}
            crate::util::setting::InFile::Key => {
                assert!(row.contains(&format!("`{}", def.key)), "{row}: {}", def.key)
            }
            crate::util::setting::InFile::Table => {
                assert!(
                    row.contains(&format!("`[{}]`", def.key)),
                    "{row}: {}",
                    def.key
                )
            }
        }
        if let Some(default) = def.default {
            assert!(row.replace('`', "").contains(default), "{row}: {default}");
        }
    }
}

#[test]
fn the_defaults_shown_are_the_defaults_used() {
    let text = |def: &Setting| def.default.unwrap();
    assert_eq!(parse_seconds(text(&defs::DEADLINE)), Ok(DEFAULT_DEADLINE));
    assert_eq!(
        parse_bytes(text(&defs::MAX_SCRIPT_BYTES)),
        Ok(DEFAULT_MAX_SCRIPT_BYTES)
    );
    let s = Settings::resolve(&CommonArgs::default(), &env_of(&[])).unwrap();
    assert_eq!(parse::choice(text(&defs::SOURCE)), Ok(s.source));
    assert_eq!(parse::choice(text(&defs::LOG_FORMAT)), Ok(s.log_format));
    assert_eq!(
        s.store.vault.kv_version.to_string(),
        text(&crate::credentials::vault::config::defs::KV_VERSION)
    );
    assert_eq!(s.store.choice, StoreChoice::Auto);
    assert_eq!(text(&crate::credentials::config::STORE), "auto");
    if cfg!(unix) {
        assert_eq!(s.state_dir, PathBuf::from(text(&defs::STATE_DIR)));
        let config = PathBuf::from(text(&defs::CONFIG).trim_end_matches(" when present"));
        assert_eq!(config, default_dir("config").join("config.toml"));
    }
}

#[test]
fn every_variable_read_is_a_definitions_variable() {
    let asked = RefCell::new(Vec::<String>::new());
    let env = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        None
    };
    Settings::resolve(&CommonArgs::default(), &env).unwrap();
    let defined: Vec<&str> = every_definition().iter().filter_map(|d| d.var).collect();
    for name in asked.borrow().iter() {
        assert!(
            defined.contains(&name.as_str()),
            "{name} is read but defined nowhere"
        );
    }
    // And each definition's variable is read (`-v`'s filter by logging).
    for name in defined {
        assert!(
            name == defs::VERBOSE.var_name() || asked.borrow().iter().any(|a| a == name),
            "{name} is defined but never read"
        );
    }
}

#[test]
fn a_bad_tag_in_the_config_file_is_78_and_keeps_its_key_and_origin() {
    // A value with a bidirectional override, refused by Tag::new (65 from
    // a tags file, 78 from the config file).
    let (_dir, path) = config("[tags]\n\"rs_agent:proxy_host\" = \"a\\u202Eb\"\n");
    let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
    let err = Settings::resolve(&CommonArgs::default(), &env).unwrap_err();
    assert_eq!(err.exit_code(), 78, "{err}");
    let (key, origin) = err.tag_fields().expect("a tag's error");
    assert_eq!(key, "rs_agent:proxy_host");
    assert!(origin.contains(path.to_str().unwrap()), "{origin}");
}

/// Every `config.toml` shipped in `dist/config/` is read, chooses the store
/// its name says (for Vault, the login), and opens it with every setting
/// checked and no request sent: an operator who copies one gets a store,
/// not a 78.
#[test]
fn the_shipped_no_secret_configs_choose_and_open_their_store() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/config");
    let context = crate::credentials::open::OpenContext {
        extra: &[],
        budget: Duration::from_secs(1),
        metadata_endpoint: None,
    };
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let env = env_of(&[("TAGSTRAP_CONFIG", path.to_str().unwrap())]);
        let s = Settings::resolve(&CommonArgs::default(), &env)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = &s.store.vault;
        let (choice, store) = match name.as_str() {
            "aws-secrets-manager" => (StoreChoice::AwsSecretsManager, "AWS Secrets Manager"),
            "aws-ssm" => (StoreChoice::AwsSsm, "AWS SSM Parameter Store"),
            "gcp-secret-manager" => (StoreChoice::GcpSecretManager, "Secret Manager"),
            "azure-key-vault" => (StoreChoice::AzureKeyVault, "Key Vault"),
            "vault-jwt-gce" | "vault-jwt-azure" => {
                assert!(
                    v.jwt.is_some() && v.cert.is_none() && v.aws.is_none(),
                    "{name}"
                );
                (StoreChoice::Auto, "Vault/OpenBao")
            }
            "vault-aws" => {
                assert!(
                    v.aws.is_some() && v.jwt.is_none() && v.cert.is_none(),
                    "{name}"
                );
                (StoreChoice::Auto, "Vault/OpenBao")
            }
            "vault-cert" => {
                assert!(
                    v.cert.is_some() && v.jwt.is_none() && v.aws.is_none(),
                    "{name}"
                );
                (StoreChoice::Auto, "Vault/OpenBao")
            }
            other => panic!("dist/config/{other}.toml: which store is it?"),
        };
        assert_eq!(s.store.choice, choice, "{name}");
        assert!(v.token.is_none() && v.token_file.is_none() && v.approle.is_none());
        match crate::credentials::open::open(&s.store, &context) {
            Ok(opened) => {
                let described = opened.describe();
                assert!(described.contains(store), "{name}: {described}");
            }
            // The machine's own certificate is not in the repository; that
            // is the only thing opening may find missing.
            Err(e) if name == "vault-cert" => {
                assert!(e.message().contains("/etc/tagstrap/machine."), "{e}")
            }
            Err(e) => panic!("{name}: {e}"),
        }
        seen.push(name);
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
}
