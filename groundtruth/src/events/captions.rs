//! Global captions: the theme and [`Layout`] of a world as text.
//!
//! # Main types
//! - [`Layout`]: where a walk starts (a corridor or a hall), a property of
//!   the seed ([`World::layout`](crate::World::layout), [`find_seed`]).
//! - [`global_caption`] names a theme and layout; [`parse_global_caption`]
//!   reads them back from text.

use crate::{Theme, World};

/// Where a walk starts: the layout a global caption names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// A corridor of the maze.
    Corridor,
    /// An open room (a hall, a plaza, a clearing).
    Hall,
}

impl Layout {
    /// Every layout.
    pub const ALL: [Layout; 2] = [Layout::Corridor, Layout::Hall];

    /// `corridor` or `hall`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Corridor => "corridor",
            Layout::Hall => "hall",
        }
    }
}

impl World {
    /// The layout at the start: a hall when at least 7 of the 9 tiles
    /// around the start are floor, else a corridor.
    pub fn layout(&self) -> Layout {
        let (x, y) = self.start_pose().tile();
        let open = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .filter(|(dx, dy)| !self.map().is_solid(x + dx, y + dy))
            .count();
        if open >= 7 {
            Layout::Hall
        } else {
            Layout::Corridor
        }
    }
}

/// The global caption of a theme and layout.
pub fn global_caption(theme: Theme, layout: Layout) -> &'static str {
    match (theme, layout) {
        (Theme::Dungeon, Layout::Corridor) => "a torch-lit stone dungeon corridor with brick walls",
        (Theme::Dungeon, Layout::Hall) => "a torch-lit stone dungeon hall with coloured pillars",
        (Theme::Neon, Layout::Corridor) => "a neon city corridor at night with glowing signs",
        (Theme::Neon, Layout::Hall) => "a neon city plaza at night with glowing pillars",
        (Theme::Forest, Layout::Corridor) => "a snowy forest path between hedges",
        (Theme::Forest, Layout::Hall) => "a snowy forest clearing among the trees",
    }
}

/// The theme and layout a text names (either may be missing): theme words
/// `dungeon`/`stone`/`brick`/`torch`, `neon`/`city`/`cyber`,
/// `forest`/`snowy`/`tree`/`hedge`; layout words `corridor`/`path`/
/// `passage`/`hallway`/`tunnel`, `hall`/`room`/`plaza`/`clearing`/`chamber`/
/// `square`. The first theme word in the text wins.
pub fn parse_global_caption(text: &str) -> (Option<Theme>, Option<Layout>) {
    let t = text.to_lowercase();
    let first = |words: &[&str]| words.iter().filter_map(|w| t.find(w)).min();
    let themes = [
        (
            Theme::Dungeon,
            first(&["dungeon", "stone", "brick", "torch"]),
        ),
        (Theme::Neon, first(&["neon", "city", "cyber"])),
        (
            Theme::Forest,
            first(&["forest", "snowy", "tree", "hedge", "woods"]),
        ),
    ];
    let theme = themes
        .iter()
        .filter_map(|(th, at)| at.map(|a| (a, *th)))
        .min_by_key(|(a, _)| *a)
        .map(|(_, th)| th);
    // "hallway" is a corridor: look for corridor words first, removing them.
    let corridor = ["corridor", "hallway", "path", "passage", "tunnel"];
    let hall = ["hall", "room", "plaza", "clearing", "chamber", "square"];
    let mut rest = t.clone();
    let mut c_at = None;
    for w in corridor {
        if let Some(i) = rest.find(w) {
            c_at = Some(c_at.map_or(i, |c: usize| c.min(i)));
            rest = rest.replace(w, &" ".repeat(w.len()));
        }
    }
    let h_at = hall.iter().filter_map(|w| rest.find(w)).min();
    let layout = match (c_at, h_at) {
        (Some(c), Some(h)) => Some(if c < h {
            Layout::Corridor
        } else {
            Layout::Hall
        }),
        (Some(_), None) => Some(Layout::Corridor),
        (None, Some(_)) => Some(Layout::Hall),
        (None, None) => None,
    };
    (theme, layout)
}

/// The first seed from `from` (within 10 000 seeds) whose world starts in
/// `layout`.
pub fn find_seed(layout: Layout, from: u64) -> Option<u64> {
    (from..from.saturating_add(10_000)).find(|&s| World::new(s, Theme::Dungeon).layout() == layout)
}
