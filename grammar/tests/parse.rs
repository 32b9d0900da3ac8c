//! Parser, loader and validation tests of the `.world` language.

use std::path::Path;
use wgraph_grammar::ast::*;
use wgraph_grammar::diagnostic::{Diagnostics, render};
use wgraph_grammar::source::{FileId, SourceMap};
use wgraph_grammar::{MemLoader, load_graph, parse_file, parse_value, validate};

/// The example of the parser's documentation.
const EXAMPLE: &str = r#"// line comments with //
world {
    seed = 42
    fps = 8
    resolution = 64x64
    frames_per_tick = 1
    provider = cpu
}

include "parts/sim.world"

model vae = "models/vae.onnx" { provider = cuda, device_id = 0 }

node start: image { path = "start.png" }
node noise: noise { shape = [1, 3, H, W], seed = 7, mean = -0.5, std = 1e-1 }
node sampler: euler {
    steps = 4
    shift = 7.0
    denoiser = @flow            // uses node `flow` as a callable
    guidance = { scale = 5.0, conditions = ["text", "action"] }
}

start.image -> mix.a          // edge: node.port -> node.port
noise -> mix.b                // a bare node name means "its only port"
feedback mix.out -> blend.prev init zeros(1x3x64x64)
feedback sampler.latent -> mem.latent init fill(0.5, 1x16x2x2)
feedback a.x -> b.y init npy("start.npy")
"#;

fn source(text: &str) -> (SourceMap, FileId) {
    let mut sources = SourceMap::new();
    let file = sources.add("t.world", None, text.to_owned());
    (sources, file)
}

fn shorts(sources: &SourceMap, diags: &Diagnostics) -> Vec<String> {
    diags.iter().map(|d| d.short(sources)).collect()
}

/// Parses `text`, panicking with the rendered errors.
fn parse_ok(text: &str) -> WorldFile {
    let (sources, file) = source(text);
    parse_file(&sources, file).unwrap_or_else(|d| panic!("{}", render(&sources, &d, false)))
}

/// The errors of parsing `text`, in `file:line:col: message` form.
fn parse_errors(text: &str) -> Vec<String> {
    let (sources, file) = source(text);
    match parse_file(&sources, file) {
        Ok(parsed) => panic!("expected errors, parsed {parsed:?}"),
        Err(diags) => shorts(&sources, &diags),
    }
}

/// The only error of parsing `text`.
fn parse_error(text: &str) -> String {
    let errors = parse_errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap_or_default()
}

fn value(text: &str) -> ValueKind {
    let (sources, file) = source(text);
    match parse_value(&sources, file) {
        Ok(value) => value.kind,
        Err(d) => panic!("{}", render(&sources, &d, false)),
    }
}

fn dims(spec: &[&str]) -> Vec<DimExpr> {
    spec.iter()
        .map(|d| match d.parse() {
            Ok(n) => DimExpr::Known(n),
            Err(_) => DimExpr::Symbol((*d).to_owned()),
        })
        .collect()
}

mod example {
    use super::*;

    #[test]
    fn full_example_parses_to_the_expected_ast() {
        let (sources, file) = source(EXAMPLE);
        let parsed = parse_file(&sources, file).expect("the example parses");
        let text = |span| sources.snippet(span);
        let s = &parsed.statements;
        assert_eq!(s.len(), 11);

        let Statement::Settings(world) = &s[0] else {
            panic!("{:?}", s[0])
        };
        assert!(text(world.span).starts_with('{') && text(world.span).ends_with('}'));
        let keys: Vec<&str> = world.entries.iter().map(|e| e.key.name.as_str()).collect();
        assert_eq!(
            keys,
            ["seed", "fps", "resolution", "frames_per_tick", "provider"]
        );
        let resolution = world.get("resolution").expect("resolution");
        assert_eq!(resolution.value.kind, ValueKind::Size(dims(&["64", "64"])));
        assert_eq!(text(resolution.value.span), "64x64");
        assert_eq!(text(resolution.key.span), "resolution");
        assert_eq!(
            world.get("seed").map(|e| &e.value.kind),
            Some(&ValueKind::Int(42))
        );
        assert_eq!(
            world.get("provider").map(|e| &e.value.kind),
            Some(&ValueKind::Ident("cpu".into()))
        );

        let Statement::Include(include) = &s[1] else {
            panic!("{:?}", s[1])
        };
        assert_eq!(include.path, "parts/sim.world");
        assert_eq!(text(include.span), r#"include "parts/sim.world""#);

        let Statement::Model(vae) = &s[2] else {
            panic!("{:?}", s[2])
        };
        assert_eq!(vae.name.name, "vae");
        assert_eq!(vae.path, "models/vae.onnx");
        assert_eq!(text(vae.path_span), r#""models/vae.onnx""#);
        assert_eq!(text(vae.options.span), "{ provider = cuda, device_id = 0 }");
        assert_eq!(
            vae.options.get("device_id").map(|e| &e.value.kind),
            Some(&ValueKind::Int(0))
        );
        assert_eq!(
            text(vae.span),
            r#"model vae = "models/vae.onnx" { provider = cuda, device_id = 0 }"#
        );

        let Statement::Node(start) = &s[3] else {
            panic!("{:?}", s[3])
        };
        assert_eq!(
            (start.name.name.as_str(), start.kind.name.as_str()),
            ("start", "image")
        );
        assert_eq!(text(start.kind.span), "image");
        assert_eq!(
            start.params.get("path").map(|e| &e.value.kind),
            Some(&ValueKind::Str("start.png".into()))
        );

        let Statement::Node(noise) = &s[4] else {
            panic!("{:?}", s[4])
        };
        let shape = &noise.params.get("shape").expect("shape").value;
        assert_eq!(text(shape.span), "[1, 3, H, W]");
        let ValueKind::List(items) = &shape.kind else {
            panic!("{shape:?}")
        };
        let kinds: Vec<&ValueKind> = items.iter().map(|v| &v.kind).collect();
        assert_eq!(
            kinds,
            [
                &ValueKind::Int(1),
                &ValueKind::Int(3),
                &ValueKind::Ident("H".into()),
                &ValueKind::Ident("W".into())
            ]
        );
        assert_eq!(
            noise.params.get("mean").map(|e| &e.value.kind),
            Some(&ValueKind::Float(-0.5))
        );
        assert_eq!(
            noise.params.get("std").map(|e| &e.value.kind),
            Some(&ValueKind::Float(0.1))
        );

        let Statement::Node(sampler) = &s[5] else {
            panic!("{:?}", s[5])
        };
        assert!(text(sampler.span).starts_with("node sampler: euler {\n"));
        assert!(text(sampler.span).ends_with("\"action\"] }\n}"));
        assert_eq!(
            sampler.params.get("shift").map(|e| &e.value.kind),
            Some(&ValueKind::Float(7.0))
        );
        let denoiser = &sampler.params.get("denoiser").expect("denoiser").value;
        assert_eq!(denoiser.kind, ValueKind::NodeRef("flow".into()));
        assert_eq!(text(denoiser.span), "@flow");
        let guidance = &sampler.params.get("guidance").expect("guidance").value;
        let ValueKind::Record(guidance) = &guidance.kind else {
            panic!("{guidance:?}")
        };
        let conditions = &guidance.get("conditions").expect("conditions").value;
        assert_eq!(
            conditions.kind,
            ValueKind::List(vec![
                Value {
                    kind: ValueKind::Str("text".into()),
                    span: items_span(&conditions.kind, 0)
                },
                Value {
                    kind: ValueKind::Str("action".into()),
                    span: items_span(&conditions.kind, 1)
                },
            ])
        );

        let Statement::Edge(edge) = &s[6] else {
            panic!("{:?}", s[6])
        };
        assert_eq!(text(edge.span), "start.image -> mix.a");
        assert_eq!(text(edge.from.span), "start.image");
        assert_eq!(text(edge.from.node.span), "start");
        assert_eq!(edge.from.port.as_ref().map(|p| text(p.span)), Some("image"));
        assert_eq!(edge.to.node.name, "mix");

        let Statement::Edge(bare) = &s[7] else {
            panic!("{:?}", s[7])
        };
        assert_eq!(
            (bare.from.node.name.as_str(), bare.from.port.as_ref()),
            ("noise", None)
        );
        assert_eq!(text(bare.from.span), "noise");

        let Statement::Feedback(zeros) = &s[8] else {
            panic!("{:?}", s[8])
        };
        assert_eq!(
            text(zeros.span),
            "feedback mix.out -> blend.prev init zeros(1x3x64x64)"
        );
        assert_eq!(text(zeros.init.span()), "zeros(1x3x64x64)");
        assert_eq!(
            zeros.init,
            Init::Zeros {
                shape: dims(&["1", "3", "64", "64"]),
                span: zeros.init.span()
            }
        );
        let Statement::Feedback(fill) = &s[9] else {
            panic!("{:?}", s[9])
        };
        assert_eq!(
            fill.init,
            Init::Fill {
                value: 0.5,
                shape: dims(&["1", "16", "2", "2"]),
                span: fill.init.span()
            }
        );
        let Statement::Feedback(npy) = &s[10] else {
            panic!("{:?}", s[10])
        };
        assert_eq!(
            npy.init,
            Init::Npy {
                path: "start.npy".into(),
                span: npy.init.span()
            }
        );
        assert_eq!(
            text(npy.span),
            r#"feedback a.x -> b.y init npy("start.npy")"#
        );
    }

    fn items_span(list: &ValueKind, i: usize) -> wgraph_grammar::source::Span {
        match list {
            ValueKind::List(items) => items[i].span,
            other => panic!("{other:?}"),
        }
    }
}

mod syntax {
    use super::*;

    #[test]
    fn keywords_are_not_reserved() {
        let parsed = parse_ok("world.x -> a.b\nnode world: node\nnode -> include\nfeedback.y -> b");
        let kinds: Vec<&str> = parsed
            .statements
            .iter()
            .map(|s| match s {
                Statement::Edge(_) => "edge",
                Statement::Node(_) => "node",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["edge", "node", "edge", "edge"]);
    }

    #[test]
    fn declaration_without_record_has_empty_record_at_its_end() {
        let text = "node a: b   // no params\nmodel m = \"m.onnx\"\n";
        let (sources, file) = source(text);
        let parsed = parse_file(&sources, file).expect("parses");
        let Statement::Node(node) = &parsed.statements[0] else {
            panic!()
        };
        assert_eq!(sources.snippet(node.span), "node a: b");
        assert!(node.params.entries.is_empty());
        assert_eq!((node.params.span.start, node.params.span.end), (9, 9));
        let Statement::Model(model) = &parsed.statements[1] else {
            panic!()
        };
        assert_eq!(sources.snippet(model.span), "model m = \"m.onnx\"");
    }

    #[test]
    fn record_separators_newlines_commas_trailing_comma_and_empty() {
        let parsed = parse_ok("node a: b {\n x = 1,\n y = 2\n z = 3, w = 4,\n}\nnode c: d {}");
        let Statement::Node(a) = &parsed.statements[0] else {
            panic!()
        };
        let keys: Vec<&str> = a
            .params
            .entries
            .iter()
            .map(|e| e.key.name.as_str())
            .collect();
        assert_eq!(keys, ["x", "y", "z", "w"]);
        let Statement::Node(c) = &parsed.statements[1] else {
            panic!()
        };
        assert!(c.params.entries.is_empty());
    }

    #[test]
    fn init_shapes_allow_a_single_dim_and_symbols() {
        let parsed =
            parse_ok("feedback a -> b init zeros(16)\nfeedback a -> b init fill(-1, 1xHxW)");
        let inits: Vec<&Init> = parsed
            .statements
            .iter()
            .map(|s| match s {
                Statement::Feedback(f) => &f.init,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(inits[0], Init::Zeros { shape, .. } if *shape == dims(&["16"])));
        assert!(
            matches!(inits[1], Init::Fill { value, shape, .. } if *value == -1.0 && *shape == dims(&["1", "H", "W"]))
        );
    }

    #[test]
    fn values_of_every_kind() {
        assert_eq!(value("4"), ValueKind::Int(4));
        assert_eq!(value("-1"), ValueKind::Int(-1));
        assert_eq!(value("-9223372036854775808"), ValueKind::Int(i64::MIN));
        assert_eq!(value("7.0"), ValueKind::Float(7.0));
        assert_eq!(value("1e-3"), ValueKind::Float(1e-3));
        assert_eq!(value("2.5E+4"), ValueKind::Float(2.5e4));
        assert_eq!(value("true"), ValueKind::Bool(true));
        assert_eq!(value(" false "), ValueKind::Bool(false));
        assert_eq!(value("truex"), ValueKind::Ident("truex".into()));
        assert_eq!(value("cpu"), ValueKind::Ident("cpu".into()));
        assert_eq!(value("H"), ValueKind::Ident("H".into()));
        assert_eq!(value("64x64"), ValueKind::Size(dims(&["64", "64"])));
        assert_eq!(
            value("1x3xHxW"),
            ValueKind::Size(dims(&["1", "3", "H", "W"]))
        );
        assert_eq!(value("@flow"), ValueKind::NodeRef("flow".into()));
        assert_eq!(
            value(r#""a\"b\\c\nd\te""#),
            ValueKind::Str("a\"b\\c\nd\te".into())
        );
        assert_eq!(value("[]"), ValueKind::List(vec![]));
        let ValueKind::List(items) = value("[\n  1,\n  [2x2, x],\n  {a = 1},\n]") else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[2].kind, ValueKind::Record(r) if r.get("a").is_some()));
    }

    #[test]
    fn set_flag_value_errors_are_located_in_the_pseudo_file() {
        let mut sources = SourceMap::new();
        let file = sources.add("--set sampler.steps", None, "[1, 2".into());
        let diags = parse_value(&sources, file).expect_err("unclosed list");
        assert_eq!(
            shorts(&sources, &diags),
            ["--set sampler.steps:1:6: expected `,` or `]`, found end of file"]
        );
    }
}

mod errors {
    use super::*;

    #[test]
    fn missing_arrow() {
        let error = parse_error("node a: b {}\n\nstart.image  mix.a");
        assert_eq!(error, "t.world:3:14: expected `->`, found `mix`");
    }

    #[test]
    fn missing_value() {
        let error = parse_error("node a: b {\n  steps = }");
        assert!(
            error.starts_with("t.world:2:11: expected a value (number, string, size like 64x64")
        );
        assert!(error.ends_with("found `}`"), "{error}");
    }

    #[test]
    fn missing_equals() {
        assert_eq!(
            parse_error("node a: b { steps 4 }"),
            "t.world:1:19: expected `=`, found `4`"
        );
    }

    #[test]
    fn not_a_statement() {
        let error = parse_error("a -> b\n}");
        assert!(error.starts_with("t.world:2:1: expected a statement: `node`, `model`, `include`, `world`, `feedback` or an edge `a.out -> b.in`"));
        assert!(error.ends_with("found `}`"), "{error}");
    }

    #[test]
    fn unclosed_record_at_end_of_file() {
        assert_eq!(
            parse_error("node a: b {\n  x = 1"),
            "t.world:2:8: expected a key, `,` or `}`, found end of file"
        );
    }

    #[test]
    fn missing_init() {
        assert_eq!(
            parse_error("feedback a.x -> b.y zeros(4)"),
            "t.world:1:21: expected `init`, found `zeros`"
        );
        assert!(
            parse_error("feedback a -> b init ones(4)").contains("1:22: expected an initial value")
        );
    }

    #[test]
    fn booleans_are_not_identifiers() {
        assert!(parse_error("node true: x").starts_with("t.world:1:6: expected an identifier"));
    }

    #[test]
    fn unterminated_string() {
        assert_eq!(
            parse_error("node a: b { path = \"start.png }\nnode c: d"),
            "t.world:1:20: unterminated string"
        );
    }

    #[test]
    fn every_unknown_escape_is_reported() {
        let errors = parse_errors(r#"node a: b { x = "\q", y = "ok\z" }"#);
        assert_eq!(
            errors,
            [
                "t.world:1:18: unknown escape `\\q` in string",
                "t.world:1:30: unknown escape `\\z` in string"
            ]
        );
    }

    #[test]
    fn numbers_out_of_range() {
        let errors = parse_errors(
            "node a: b {\n x = 9223372036854775808\n y = 1e999\n z = 99999999999999999999x2\n}",
        );
        assert_eq!(
            errors,
            [
                "t.world:2:6: integer literal out of range",
                "t.world:3:6: number literal out of range",
                "t.world:4:6: size dimension out of range",
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_all_reported_with_the_first_definition() {
        let text = "node a: b {\n  x = 1\n  x = 2\n}\nnode c: d { y = { z = 1, z = 2 } }";
        let (sources, file) = source(text);
        let diags = parse_file(&sources, file).expect_err("duplicate keys");
        assert_eq!(
            shorts(&sources, &diags),
            [
                "t.world:3:3: duplicate key `x`",
                "t.world:5:26: duplicate key `z`"
            ]
        );
        let first = &diags.iter().next().expect("one").secondary[0];
        assert_eq!(first.message, "first defined here");
        assert_eq!(sources.location(first.span), "t.world:2:3");
    }

    #[test]
    fn nesting_64_deep_is_fine_65_is_rejected() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(value(&nested(64)), ValueKind::List(_)));
        let (sources, file) = source(&format!("node a: b {{ x = {} }}", nested(64)));
        let diags = parse_file(&sources, file).expect_err("too deep");
        // The record's `{` is the first level, so the 64th `[` is the 65th.
        assert_eq!(
            shorts(&sources, &diags),
            ["t.world:1:80: nesting deeper than 64 levels"]
        );
        // Brackets in strings and comments do not count.
        let quiet = format!("node a: b {{ s = \"{0}\" }} // {0}", "[".repeat(100));
        parse_ok(&quiet);
    }

    #[test]
    fn very_deep_nesting_does_not_overflow_the_stack() {
        let (sources, file) = source(&"{[".repeat(50_000));
        let diags = parse_file(&sources, file).expect_err("too deep");
        assert_eq!(
            shorts(&sources, &diags),
            ["t.world:1:65: nesting deeper than 64 levels"]
        );
    }

    #[test]
    fn render_shows_location_and_caret() {
        let (sources, file) = source("node a: b {}\n\nstart.image  mix.a\n");
        let diags = parse_file(&sources, file).expect_err("syntax error");
        let rendered = render(&sources, &diags, false);
        assert!(rendered.contains("t.world:3:14"), "{rendered}");
        assert!(
            rendered
                .lines()
                .any(|l| l.contains('^') && l.trim_start().starts_with('│')),
            "{rendered}"
        );
    }
}

mod include {
    use super::*;

    fn load(loader: &MemLoader, root: &str) -> (SourceMap, Result<Graph, Diagnostics>) {
        let mut sources = SourceMap::new();
        let graph = load_graph(Path::new(root), &mut sources, loader);
        (sources, graph)
    }

    fn node_names(graph: &Graph) -> Vec<&str> {
        graph
            .statements
            .iter()
            .filter_map(|s| match s {
                Statement::Node(n) => Some(n.name.name.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn included_statements_are_spliced_in_place_from_nested_dirs() {
        let loader = MemLoader::new()
            .with(
                "graphs/a.world",
                "node a1: k\ninclude \"parts/b.world\"\nnode a2: k",
            )
            .with(
                "graphs/parts/b.world",
                "node b1: k\ninclude \"../common/c.world\"\ninclude \"d.world\"",
            )
            .with("graphs/common/c.world", "node c1: k")
            .with("graphs/parts/d.world", "node d1: k");
        let (sources, graph) = load(&loader, "graphs/a.world");
        let graph = graph.unwrap_or_else(|d| panic!("{}", render(&sources, &d, false)));
        assert_eq!(node_names(&graph), ["a1", "b1", "c1", "d1", "a2"]);
        assert!(
            !graph
                .statements
                .iter()
                .any(|s| matches!(s, Statement::Include(_)))
        );
        let names: Vec<&str> = sources.files().map(|(_, f)| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "graphs/a.world",
                "graphs/parts/b.world",
                "graphs/common/c.world",
                "graphs/parts/d.world"
            ]
        );
        let (b, _) = sources.files().nth(1).expect("b");
        assert_eq!(sources.get(b).base_dir(), Path::new("graphs/parts"));
        assert_eq!(graph.root, Some(FileId(0)));
        assert!(validate(&graph).is_empty());
    }

    #[test]
    fn errors_of_all_files_are_collected() {
        let loader = MemLoader::new()
            .with(
                "a.world",
                "include \"missing.world\"\ninclude \"bad.world\"\ninclude \"dup.world\"",
            )
            .with("bad.world", "node x y")
            .with(
                "dup.world",
                "node d: k { p = 1, p = 2 }\ninclude \"also_missing.world\"",
            );
        let (sources, graph) = load(&loader, "a.world");
        let diags = graph.expect_err("errors");
        let shorts = shorts(&sources, &diags);
        assert_eq!(shorts.len(), 4, "{shorts:?}");
        assert_eq!(
            shorts[0],
            "a.world:1:1: cannot read include `missing.world`: no such file"
        );
        assert_eq!(shorts[1], "bad.world:1:8: expected `:`, found `y`");
        assert_eq!(shorts[2], "dup.world:1:20: duplicate key `p`");
        assert!(shorts[3].starts_with("dup.world:2:1: cannot read include `also_missing.world`"));
    }

    #[test]
    fn include_cycle_names_the_chain() {
        let loader = MemLoader::new()
            .with("g/a.world", "node a: k\ninclude \"sub/b.world\"")
            .with("g/sub/b.world", "\n  include \"../a.world\"");
        let (sources, graph) = load(&loader, "g/a.world");
        let diags = graph.expect_err("cycle");
        assert_eq!(
            shorts(&sources, &diags),
            ["g/sub/b.world:2:3: include cycle: g/a.world -> g/sub/b.world -> g/a.world"]
        );
        assert_eq!(
            sources.snippet(diags.iter().next().expect("one").primary.span),
            "include \"../a.world\""
        );
    }

    #[test]
    fn self_include_is_a_cycle() {
        let loader = MemLoader::new().with("a.world", "include \"./a.world\"");
        let (sources, graph) = load(&loader, "a.world");
        assert_eq!(
            shorts(&sources, &graph.expect_err("cycle")),
            ["a.world:1:1: include cycle: a.world -> a.world"]
        );
    }

    #[test]
    fn non_utf8_bytes_in_root_and_include() {
        let loader = MemLoader::new()
            .with("a.world", b"node a: k\nnode b\xff: k".to_vec())
            .with("r.world", "node r: k\ninclude \"a.world\"");
        let (sources, graph) = load(&loader, "a.world");
        assert_eq!(
            shorts(&sources, &graph.expect_err("not utf-8")),
            ["a.world:2:7: file is not valid UTF-8 text (invalid byte at offset 16)"]
        );
        let (sources, graph) = load(&loader, "r.world");
        assert_eq!(
            shorts(&sources, &graph.expect_err("not utf-8")),
            [
                "r.world:2:1: cannot read include `a.world`: file is not valid UTF-8 text (invalid byte at offset 16)"
            ]
        );
    }

    #[test]
    fn unreadable_root_points_at_a_pseudo_file() {
        let (sources, graph) = load(&MemLoader::new(), "nowhere.world");
        let diags = graph.expect_err("unreadable");
        assert_eq!(
            shorts(&sources, &diags),
            ["nowhere.world:1:1: cannot read `nowhere.world`: no such file"]
        );
        assert!(render(&sources, &diags, false).contains("cannot read"));
    }

    /// A file including the next twice at each of 30 levels would expand
    /// 2³⁰ times: the expansion stops at the include past the limit, with
    /// one error located there, and quickly.
    #[test]
    fn exponential_includes_stop_at_a_limit() {
        let mut loader = MemLoader::new();
        for level in 0..30 {
            loader = loader.with(
                format!("l{level}.world"),
                format!(
                    "node n{level}: k\ninclude \"l{next}.world\"\ninclude \"l{next}.world\"\n",
                    next = level + 1
                ),
            );
        }
        loader = loader.with("l30.world", "// leaf\n");
        let started = std::time::Instant::now();
        let (sources, graph) = load(&loader, "l0.world");
        let diags = graph.expect_err("too many includes");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let found = shorts(&sources, &diags);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .ends_with("this graph expands more than 1000 includes; the expansion stops here"),
            "{found:?}"
        );
        assert!(found[0].starts_with("l"), "{found:?}");

        // The same by size: a 1 MiB file included 17 times in a row (it
        // fails to parse at once, which keeps the test fast; the limit
        // counts the text whatever it holds).
        let big = format!("node x y\n// {}\n", "x".repeat(1 << 20));
        let root: String = (0..17).map(|_| "include \"big.world\"\n").collect();
        let loader = MemLoader::new()
            .with("r.world", root)
            .with("big.world", big);
        let started = std::time::Instant::now();
        let (sources, graph) = load(&loader, "r.world");
        let found = shorts(&sources, &graph.expect_err("too much text"));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(found.len(), 16, "{found:?}");
        assert!(found[..15].iter().all(|s| s.contains("expected `:`")));
        assert_eq!(
            found[15],
            "r.world:16:1: this graph expands to more than 16 MiB of text with its includes; the expansion stops here"
        );
    }

    /// Devices, FIFOs and directories are refused before they are opened.
    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo.world");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        let main = dir.path().join("main.world");
        std::fs::write(
            &main,
            format!(
                "include \"/dev/zero\"\ninclude \"fifo.world\"\ninclude \"{}\"",
                dir.path().display()
            ),
        )
        .expect("write");
        let mut sources = SourceMap::new();
        let diags =
            load_graph(&main, &mut sources, &wgraph_grammar::FsLoader).expect_err("refused");
        let found = shorts(&sources, &diags);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].ends_with("cannot read include `/dev/zero`: not a regular file (a character device); wgraph reads only regular files"), "{found:?}");
        assert!(
            found[1].contains("not a regular file (a named pipe)"),
            "{found:?}"
        );
        assert!(
            found[2].contains("not a regular file (a directory)"),
            "{found:?}"
        );
        let mut sources = SourceMap::new();
        let diags = load_graph(
            Path::new("/dev/zero"),
            &mut sources,
            &wgraph_grammar::FsLoader,
        )
        .expect_err("refused");
        assert_eq!(
            shorts(&sources, &diags),
            [
                "/dev/zero:1:1: cannot read `/dev/zero`: not a regular file (a character device); wgraph reads only regular files"
            ]
        );
    }

    #[test]
    fn reads_files_from_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("parts")).expect("mkdir");
        std::fs::write(
            dir.path().join("main.world"),
            "include \"parts/p.world\"\nnode m: k",
        )
        .expect("write");
        std::fs::write(dir.path().join("parts/p.world"), "node p: k").expect("write");
        let mut sources = SourceMap::new();
        let graph = load_graph(
            &dir.path().join("main.world"),
            &mut sources,
            &wgraph_grammar::FsLoader,
        )
        .unwrap_or_else(|d| panic!("{}", render(&sources, &d, false)));
        assert_eq!(node_names(&graph), ["p", "m"]);
    }
}

mod validation {
    use super::*;

    #[test]
    fn duplicate_node_across_files_points_at_both() {
        let loader = MemLoader::new()
            .with("a.world", "node x: k\ninclude \"b.world\"")
            .with("b.world", "\nnode x: other");
        let mut sources = SourceMap::new();
        let graph = load_graph(Path::new("a.world"), &mut sources, &loader).expect("loads");
        let diags = validate(&graph);
        assert_eq!(
            shorts(&sources, &diags),
            ["b.world:2:6: duplicate node `x`"]
        );
        let first = &diags.iter().next().expect("one").secondary[0];
        assert_eq!(
            (first.message.as_str(), sources.location(first.span)),
            ("first defined here", "a.world:1:6".into())
        );
    }

    #[test]
    fn duplicate_model_and_node_model_clash() {
        let (sources, file) =
            source("model m = \"a\"\nmodel m = \"b\"\nnode m: k\nnode n: k\nmodel n = \"c\"");
        let graph = Graph {
            root: Some(file),
            statements: parse_file(&sources, file).expect("parses").statements,
        };
        assert_eq!(
            shorts(&sources, &validate(&graph)),
            [
                "t.world:2:7: duplicate model `m`",
                "t.world:3:6: node `m` has the same name as model `m`",
                "t.world:5:7: model `n` has the same name as node `n`",
            ]
        );
    }
}

mod robustness {
    use super::*;

    /// A tiny deterministic xorshift generator.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) {
        const INTERESTING: &[u8] = b"{}[]()\"\\/.=,:@-x\n 09aZ_";
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if at < bytes.len() => {
                    // Mostly ASCII, so that not every other file is invalid UTF-8.
                    let byte = rng.next() as u8;
                    bytes[at] = if rng.below(4) == 0 { byte } else { byte & 0x7f };
                }
                1 if at < bytes.len() => bytes[at] = INTERESTING[rng.below(INTERESTING.len())],
                2 => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                3 => {
                    let end = (at + rng.below(32)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, copy);
                }
                _ => bytes.insert(
                    at.min(bytes.len()),
                    INTERESTING[rng.below(INTERESTING.len())],
                ),
            }
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let part = "node flow: dit { blocks = 2 }\nnode start: image";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..2000 {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            mutate(&mut rng, &mut bytes);
            let loader = MemLoader::new()
                .with("t.world", bytes.clone())
                .with("parts/sim.world", part);
            let outcome = std::panic::catch_unwind(|| {
                let mut sources = SourceMap::new();
                match load_graph(Path::new("t.world"), &mut sources, &loader) {
                    Ok(graph) => {
                        let diags = validate(&graph);
                        render(&sources, &diags, false)
                    }
                    Err(diags) => {
                        assert!(diags.has_errors());
                        render(&sources, &diags, false)
                    }
                }
            });
            assert!(
                outcome.is_ok(),
                "round {round} panicked on {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

mod quoted_ports {
    use super::*;

    #[test]
    fn a_quoted_port_name_is_any_text_with_escapes() {
        let f = parse_ok("enc.\"input.1\" -> dec.\"a \\\"q\\\"\"\n");
        let Statement::Edge(edge) = &f.statements[0] else {
            panic!("{:?}", f.statements[0])
        };
        assert_eq!(
            edge.from.port.as_ref().map(|p| p.name.as_str()),
            Some("input.1")
        );
        assert_eq!(
            edge.to.port.as_ref().map(|p| p.name.as_str()),
            Some("a \"q\"")
        );
        // Unquoted, a dotted name is a syntax error, not a silent misparse.
        assert!(!parse_errors("enc.input.1 -> dec.x\n").is_empty());
    }

    /// The help of a syntax error at an unquoted port name that is not an
    /// identifier.
    fn help_of(text: &str) -> Option<String> {
        let (sources, file) = source(text);
        let diags = parse_file(&sources, file).expect_err("syntax error");
        diags.iter().next().and_then(|d| d.help.clone())
    }

    /// `net.35` and `enc.input.1` are syntax errors whose help writes the
    /// port quoted, on either side of the arrow.
    #[test]
    fn a_numeric_port_gets_a_hint_to_quote_it() {
        let want = |q: &str| {
            Some(format!(
                "a port name that is not an identifier is quoted: `{q}`"
            ))
        };
        assert_eq!(help_of("net.35 -> show.image\n"), want("net.\"35\""));
        assert_eq!(help_of("a.out -> net.35\n"), want("net.\"35\""));
        assert_eq!(help_of("a.out -> net.35\nb -> c\n"), want("net.\"35\""));
        assert_eq!(help_of("enc.input.1 -> dec.x\n"), want("enc.\"input.1\""));
        assert_eq!(help_of("a.out->net.x:0\n"), None);
        // Other syntax errors have no such help.
        assert_eq!(help_of("a.out b.in\n"), None);
        assert_eq!(help_of("node x: noise { shape = [1, }\n"), None);
    }
}
