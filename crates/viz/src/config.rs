//! The config file (`config.toml` in the config directory): what a user sets once
//! (their name, devices, noise suppression, the address they usually join). Options on
//! the command line win over it. A key it does not know, or a value of the wrong kind,
//! is an error that names the file and the line, so a typo never silently does
//! nothing. `viz config path|show|edit` finds, shows and edits it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;
use toml::Spanned;
use viz_client::address::JoinAddress;
use viz_client::engine::{InputSpec, OutputSpec};
use viz_client::store;

use crate::cli::{CommonArgs, ConfigCommand};

pub const FILE_NAME: &str = "config.toml";

/// What the file may say. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub name: Option<Spanned<String>>,
    pub input: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
    pub denoise: Option<bool>,
    /// Where `viz join` goes when no address is given.
    pub address: Option<Spanned<String>>,
    /// Push-to-talk key (as `--ptt` takes it).
    pub ptt: Option<Spanned<String>>,
    /// How loud you hear each person, percent, by key fingerprint. Viz writes these
    /// when you press + or - in a call.
    pub volumes: Option<BTreeMap<String, Spanned<u16>>>,
}

/// What a new file starts as: every key, commented out, with what it means.
const TEMPLATE: &str = r#"# Viz settings. Options on the command line win over these.
# Uncomment a line to use it.

# Your name as others see it (default: your login name).
# name = "alice"

# Microphone and speakers: a device name or index from `viz devices`, or "default".
# input = "default"
# output = "default"

# Noise suppression on your microphone (RNNoise; adds 20 ms). Default: on.
# denoise = true

# Push to talk: talk only while this key is held, even in a game (see viz join --help).
# ptt = "F9"

# Where `viz join` goes when you give it no address.
# address = "viz://203.0.113.7:8443#k3xq-7m2a-pq4z-rt6b-ya2c"

# How loud you hear each person, in percent (0-200), by their key's fingerprint.
# Viz adds lines here when you press + or - during a call.
# [volumes]
# k3xq7m2apq4zrt6bya2c = 60
"#;

pub fn path() -> Result<PathBuf> {
    Ok(store::config_dir()?.join(FILE_NAME))
}

/// The config file, or the defaults if there is none.
pub fn load() -> Result<Config> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// Line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses and checks `text`; errors name `path` and the line.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let at = |span: Range<usize>| format!("{} line {}", path.display(), line_of(text, span.start));
    let config: Config = toml::from_str(text).map_err(|e| {
        let place = e.span().map_or_else(|| path.display().to_string(), at);
        anyhow::anyhow!("{place}: {}", e.message())
    })?;
    if let Some(name) = &config.name
        && viz_proto::control::sanitize_name(name.get_ref()).is_empty()
    {
        bail!("{}: name: a name cannot be empty", at(name.span()));
    }
    if let Some(input) = &config.input {
        InputSpec::parse(input.get_ref()).map_err(|e| anyhow::anyhow!("{}: input: {e}", at(input.span())))?;
    }
    if let Some(address) = &config.address {
        JoinAddress::parse(address.get_ref()).map_err(|e| anyhow::anyhow!("{}: address: {e}", at(address.span())))?;
    }
    if let Some(ptt) = &config.ptt {
        ptt.get_ref()
            .parse::<viz_client::ptt::PttKey>()
            .map_err(|e| anyhow::anyhow!("{}: ptt: {e}", at(ptt.span())))?;
    }
    for (key, percent) in config.volumes.iter().flatten() {
        if *percent.get_ref() > viz_proto::control::MAX_GAIN_PERCENT {
            bail!("{}: volumes: {key} = {}: a volume is 0 to 200 (percent)", at(percent.span()), percent.get_ref());
        }
    }
    Ok(config)
}

/// Fills in what the command line left out of a call's options.
pub fn apply_to_call(config: &Config, matches: &ArgMatches, common: &mut CommonArgs) {
    let unset = |id: &str| !matches!(matches.value_source(id), Some(ValueSource::CommandLine));
    if let Some(name) = &config.name
        && common.name.is_none()
    {
        common.name = Some(name.get_ref().clone());
    }
    if let Some(input) = config.input.as_ref().filter(|_| unset("input")) {
        common.input.clone_from(input.get_ref());
    }
    if let Some(output) = config.output.as_ref().filter(|_| unset("output")) {
        common.output.clone_from(output.get_ref());
    }
    if let Some(on) = config.denoise.filter(|_| unset("denoise") && unset("no_denoise")) {
        common.audio.denoise = on;
        common.audio.no_denoise = !on;
    }
    if let Some(ptt) = config.ptt.as_ref().filter(|_| unset("ptt")) {
        common.ptt = ptt.get_ref().parse().ok();
    }
    common.volumes = config.volumes.iter().flatten().map(|(k, p)| (k.clone(), *p.get_ref())).collect();
}

/// `viz config path|show|edit`.
pub fn run(command: ConfigCommand) -> Result<()> {
    let path = path()?;
    match command {
        ConfigCommand::Path => println!("{}", path.display()),
        ConfigCommand::Show => show(&path)?,
        ConfigCommand::Edit => edit(&path)?,
    }
    Ok(())
}

fn show(path: &Path) -> Result<()> {
    let exists = path.exists();
    println!("{} ({})", path.display(), if exists { "in use" } else { "not created yet: viz config edit" });
    let config = load()?;
    let shown = |v: Option<&Spanned<String>>, default: &str| match v {
        Some(v) => format!("{:?}", v.get_ref()),
        None => format!("{default} (default)"),
    };
    println!("name    = {}", shown(config.name.as_ref(), "your login name"));
    println!("input   = {}", shown(config.input.as_ref(), "\"default\""));
    println!("output  = {}", shown(config.output.as_ref(), "\"default\""));
    println!(
        "denoise = {}",
        config.denoise.map_or_else(|| "true for a microphone (default)".to_owned(), |d| d.to_string())
    );
    println!("address = {}", shown(config.address.as_ref(), "none"));
    println!("ptt     = {}", shown(config.ptt.as_ref(), "off"));
    let volumes = config.volumes.unwrap_or_default();
    println!(
        "volumes = {}",
        if volumes.is_empty() {
            "everyone at 100 % (default)".to_owned()
        } else {
            format!("{} people set", volumes.len())
        }
    );
    for (key, percent) in &volumes {
        println!("          {key} = {} %", percent.get_ref());
    }
    // Say what the devices named would be, so a typo shows here and not mid-call.
    if let Some(output) = &config.output {
        println!("          output is {}", OutputSpec::parse(output.get_ref()).describe());
    }
    Ok(())
}

fn edit(path: &Path) -> Result<()> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, TEMPLATE).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| if cfg!(windows) { "notepad".to_owned() } else { "vi".to_owned() });
    // The variable may carry arguments ("code --wait").
    let mut words = editor.split_whitespace();
    let program = words.next().context("VISUAL/EDITOR is empty")?;
    let status = std::process::Command::new(program)
        .args(words)
        .arg(path)
        .status()
        .with_context(|| format!("cannot start the editor '{editor}' (set VISUAL or EDITOR)"))?;
    if !status.success() {
        bail!("the editor '{editor}' exited with {status}; {} was left as it is", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, path).context("the file was saved, but Viz cannot use it as it is")?;
    println!("{} is fine.", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("config.toml")).unwrap_err())
    }

    #[test]
    fn every_key_is_read_and_the_template_is_valid() {
        let c = parse(
            "name = \"alice\"\ninput = \"tone:300\"\noutput = \"null\"\ndenoise = false\naddress = \"127.0.0.1:9000\"\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.name.unwrap().into_inner(), "alice");
        assert_eq!(c.input.unwrap().into_inner(), "tone:300");
        assert_eq!(c.denoise, Some(false));
        let c = parse("[volumes]\n# bob\n\"k3xq-7m2a\" = 40\n", Path::new("c")).unwrap();
        assert_eq!(*c.volumes.unwrap()["k3xq-7m2a"].get_ref(), 40);
        assert!(parse(TEMPLATE, Path::new("t")).is_ok());
        assert!(parse("", Path::new("t")).is_ok());
    }

    #[test]
    fn mistakes_name_the_line() {
        let unknown = err("name = \"alice\"\ncolour = \"red\"\n");
        assert!(unknown.starts_with("config.toml line 2:") && unknown.contains("colour"), "{unknown}");
        let wrong_type = err("\n\ndenoise = \"yes\"\n");
        assert!(wrong_type.starts_with("config.toml line 3:"), "{wrong_type}");
        let bad_input = err("input = \"tone:loud\"\n");
        assert!(bad_input.starts_with("config.toml line 1: input:"), "{bad_input}");
        let loud = err("[volumes]\n\"ab-cd\" = 250\n");
        assert!(loud.starts_with("config.toml line 2: volumes: ab-cd = 250"), "{loud}");
        let negative = err("[volumes]\nab = -5\n");
        assert!(negative.starts_with("config.toml line 2:"), "{negative}");
        let bad_address = err("# comment\naddress = \"viz://\"\n");
        assert!(bad_address.starts_with("config.toml line 2: address:"), "{bad_address}");
        let bad_ptt = err("ptt = \"Hyper\"\n");
        assert!(bad_ptt.starts_with("config.toml line 1: ptt: no key called 'Hyper'"), "{bad_ptt}");
        let empty_name = err("name = \"   \"\n");
        assert!(empty_name.contains("line 1: name"), "{empty_name}");
        let broken = err("name = \"alice\n");
        assert!(broken.starts_with("config.toml line 1:"), "{broken}");
    }
}
