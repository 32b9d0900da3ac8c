//! The world's geometry: a tile map carved from a seeded maze, with rooms,
//! loops, landmarks (pillars, doors, wall panels) and billboard objects.
//!
//! A maze of [`MAZE_CELLS`]² cells lives on a tile map of
//! (2·[`MAZE_CELLS`] + 1)² tiles: cell (i, j) is tile (2i + 1, 2j + 1), the
//! tiles between cells are walls or openings. One tile is one world unit (a
//! "cell" in poses and depth). Geometry never depends on the theme.

use crate::rng::SplitMix64;

/// Maze cells per side; the tile map has `2 * MAZE_CELLS + 1` tiles per side.
pub const MAZE_CELLS: usize = 15;

/// Number of landmark colours ([`Tile::tint`], [`Sprite::tint`]); the same
/// tint index means the same hue in every theme.
pub const TINTS: u8 = 8;

/// What occupies a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Walkable floor.
    Floor,
    /// A plain wall (theme texture, one of four variants).
    Wall,
    /// A wall with a distinct panel: banner, neon sign, painted board.
    Panel,
    /// A wall with a (closed, decorative) door.
    Door,
    /// A free-standing coloured pillar in a room.
    Pillar,
}

/// One tile of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// What the tile is.
    pub kind: TileKind,
    /// Texture variant of walls (0..4) or landmark colour (0..[`TINTS`]).
    pub tint: u8,
}

impl Tile {
    const FLOOR: Tile = Tile {
        kind: TileKind::Floor,
        tint: 0,
    };
    const WALL: Tile = Tile {
        kind: TileKind::Wall,
        tint: 0,
    };

    /// Whether the tile blocks movement and rays (everything but floor).
    pub fn is_solid(self) -> bool {
        self.kind != TileKind::Floor
    }
}

/// Shapes of billboard objects (their silhouettes are the same in every theme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpriteKind {
    /// A coloured ball resting on the floor.
    Orb,
    /// A barrel / canister / crate.
    Barrel,
    /// A thin post with a glowing globe on top.
    Lamp,
    /// A tall diamond-shaped crystal.
    Crystal,
}

impl SpriteKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SpriteKind; 4] = [
        SpriteKind::Orb,
        SpriteKind::Barrel,
        SpriteKind::Lamp,
        SpriteKind::Crystal,
    ];

    /// Half the billboard's width in world units.
    pub fn half_width(self) -> f32 {
        match self {
            SpriteKind::Orb => 0.22,
            SpriteKind::Barrel => 0.22,
            SpriteKind::Lamp => 0.13,
            SpriteKind::Crystal => 0.18,
        }
    }

    /// The billboard's height above the floor in world units.
    pub fn height(self) -> f32 {
        match self {
            SpriteKind::Orb => 0.44,
            SpriteKind::Barrel => 0.55,
            SpriteKind::Lamp => 0.9,
            SpriteKind::Crystal => 0.7,
        }
    }

    /// Whether the point (`sx` from the centre line, `sz` above the floor,
    /// both in world units) is part of the silhouette.
    pub fn covers(self, sx: f32, sz: f32) -> bool {
        match self {
            SpriteKind::Orb => {
                let (dx, dz) = (sx / 0.22, (sz - 0.22) / 0.22);
                dx * dx + dz * dz <= 1.0
            }
            SpriteKind::Barrel => {
                // Bulging sides: narrower at the top and bottom.
                let t = (sz / 0.55 - 0.5) * 2.0;
                (0.0..=0.55).contains(&sz) && sx.abs() <= 0.22 * (1.0 - 0.18 * t * t)
            }
            SpriteKind::Lamp => {
                let (dx, dz) = (sx / 0.12, (sz - 0.78) / 0.12);
                (sx.abs() <= 0.03 && (0.0..0.7).contains(&sz))
                    || (sx.abs() <= 0.1 && (0.0..0.04).contains(&sz))
                    || dx * dx + dz * dz <= 1.0
            }
            SpriteKind::Crystal => sx.abs() / 0.18 + (sz - 0.35).abs() / 0.35 <= 1.0,
        }
    }
}

/// A billboard object standing on the floor; it blocks movement within
/// [`SPRITE_RADIUS`] of its centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sprite {
    /// Centre, in world units.
    pub x: f32,
    /// Centre, in world units.
    pub y: f32,
    /// Shape.
    pub kind: SpriteKind,
    /// Colour index (0..[`TINTS`]).
    pub tint: u8,
}

/// Radius within which a sprite blocks the player (world units).
pub const SPRITE_RADIUS: f32 = 0.25;

/// The tile map.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    size: usize,
    tiles: Vec<Tile>,
}

impl Map {
    /// Tiles per side (the map is square).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The tile at (`x`, `y`); outside the map everything is wall.
    #[inline]
    pub fn tile(&self, x: i32, y: i32) -> Tile {
        if x < 0 || y < 0 || x as usize >= self.size || y as usize >= self.size {
            return Tile::WALL;
        }
        self.tiles[y as usize * self.size + x as usize]
    }

    /// Whether the tile at (`x`, `y`) blocks (outside the map: yes).
    #[inline]
    pub fn is_solid(&self, x: i32, y: i32) -> bool {
        self.tile(x, y).is_solid()
    }

    /// Number of floor tiles.
    pub fn free_tiles(&self) -> usize {
        self.tiles.iter().filter(|t| !t.is_solid()).count()
    }

    /// Number of tiles of `kind`.
    pub fn count(&self, kind: TileKind) -> usize {
        self.tiles.iter().filter(|t| t.kind == kind).count()
    }

    fn set(&mut self, x: usize, y: usize, t: Tile) {
        let i = y * self.size + x;
        self.tiles[i] = t;
    }

    fn get(&self, x: usize, y: usize) -> Tile {
        self.tiles[y * self.size + x]
    }

    /// Floor 4-neighbours of tile (x, y).
    fn open_sides(&self, x: usize, y: usize) -> usize {
        [(0i32, -1i32), (1, 0), (0, 1), (-1, 0)]
            .iter()
            .filter(|(dx, dy)| !self.is_solid(x as i32 + dx, y as i32 + dy))
            .count()
    }
}

/// Everything [`generate`] makes.
pub(crate) struct Layout {
    pub map: Map,
    pub sprites: Vec<Sprite>,
    /// Dead-end cell tiles without a sprite and other candidate start tiles.
    pub start_tiles: Vec<(usize, usize)>,
}

/// Builds the map and objects of world `seed`.
pub(crate) fn generate(seed: u64) -> Layout {
    let mut rng = SplitMix64::new(seed ^ 0x005E_ED0F_3A2E);
    let n = MAZE_CELLS;
    let size = 2 * n + 1;
    let mut map = Map {
        size,
        tiles: vec![Tile::WALL; size * size],
    };
    let cell = |i: usize| 2 * i + 1;

    // 1. Recursive backtracker (iterative) from a random cell.
    let mut visited = vec![false; n * n];
    let start = (rng.below(n), rng.below(n));
    let mut stack = vec![start];
    visited[start.1 * n + start.0] = true;
    map.set(cell(start.0), cell(start.1), Tile::FLOOR);
    while let Some(&(i, j)) = stack.last() {
        let mut next = Vec::with_capacity(4);
        if i > 0 && !visited[j * n + i - 1] {
            next.push((i - 1, j));
        }
        if i + 1 < n && !visited[j * n + i + 1] {
            next.push((i + 1, j));
        }
        if j > 0 && !visited[(j - 1) * n + i] {
            next.push((i, j - 1));
        }
        if j + 1 < n && !visited[(j + 1) * n + i] {
            next.push((i, j + 1));
        }
        if next.is_empty() {
            stack.pop();
            continue;
        }
        let (a, b) = next[rng.below(next.len())];
        visited[b * n + a] = true;
        map.set(cell(a), cell(b), Tile::FLOOR);
        map.set(i + a + 1, j + b + 1, Tile::FLOOR); // the wall between
        stack.push((a, b));
    }

    // 2. Extra openings: loops.
    for y in 1..size - 1 {
        for x in 1..size - 1 {
            let between = (x % 2 == 0) != (y % 2 == 0);
            if between && map.get(x, y).is_solid() && rng.chance(0.09) {
                map.set(x, y, Tile::FLOOR);
            }
        }
    }

    // 3. Open rooms (2x2 to 3x3 cells); their inner posts may become pillars.
    let rooms = 3 + rng.below(2);
    let mut pillar_tint = rng.below(TINTS as usize) as u8;
    for _ in 0..rooms {
        let (rw, rh) = (rng.range(2, 3), rng.range(2, 3));
        let (ri, rj) = (rng.below(n - rw + 1), rng.below(n - rh + 1));
        let (x0, y0) = (cell(ri), cell(rj));
        let (x1, y1) = (cell(ri + rw - 1), cell(rj + rh - 1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                map.set(x, y, Tile::FLOOR);
            }
        }
        pillar_tint = (pillar_tint + 1 + rng.below(3) as u8) % TINTS;
        for y in (y0 + 1..y1).step_by(2) {
            for x in (x0 + 1..x1).step_by(2) {
                if rng.chance(0.7) {
                    let t = Tile {
                        kind: TileKind::Pillar,
                        tint: pillar_tint,
                    };
                    map.set(x, y, t);
                }
            }
        }
    }

    // 4. Wall variants, doors and panels on walls that face a floor tile.
    let mut faced = Vec::new();
    for y in 0..size {
        for x in 0..size {
            if map.get(x, y).kind == TileKind::Wall {
                let t = Tile {
                    kind: TileKind::Wall,
                    tint: (crate::texture::hash2(x as i32, y as i32, seed as u32) % 4) as u8,
                };
                map.set(x, y, t);
                // Not corner posts: only tiles with a flat face.
                let post = x % 2 == 0 && y % 2 == 0;
                if !post && map.open_sides(x, y) > 0 {
                    faced.push((x, y));
                }
            }
        }
    }
    rng.shuffle(&mut faced);
    let doors = 10.min(faced.len());
    let panels = 18.min(faced.len() - doors);
    for (k, &(x, y)) in faced.iter().take(doors + panels).enumerate() {
        let kind = if k < doors {
            TileKind::Door
        } else {
            TileKind::Panel
        };
        let tint = rng.below(TINTS as usize) as u8;
        map.set(x, y, Tile { kind, tint });
    }

    // 5. Objects in dead ends (where they block nothing else).
    let mut dead_ends = Vec::new();
    let mut starts = Vec::new();
    for j in 0..n {
        for i in 0..n {
            let (x, y) = (cell(i), cell(j));
            if map.get(x, y).is_solid() {
                continue;
            }
            if map.open_sides(x, y) == 1 {
                dead_ends.push((x, y));
            } else {
                starts.push((x, y));
            }
        }
    }
    rng.shuffle(&mut dead_ends);
    let objects = 14.min(dead_ends.len());
    let mut sprites = Vec::with_capacity(objects);
    for &(x, y) in &dead_ends[..objects] {
        sprites.push(Sprite {
            x: x as f32 + 0.5,
            y: y as f32 + 0.5,
            kind: SpriteKind::ALL[rng.below(4)],
            tint: rng.below(TINTS as usize) as u8,
        });
    }
    starts.extend_from_slice(&dead_ends[objects..]);
    starts.sort_unstable();
    Layout {
        map,
        sprites,
        start_tiles: starts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Floor tiles reachable from `from` (4-connected).
    fn reachable(map: &Map, from: (usize, usize)) -> usize {
        let s = map.size();
        let mut seen = vec![false; s * s];
        let mut todo = vec![from];
        let mut count = 0;
        while let Some((x, y)) = todo.pop() {
            if seen[y * s + x] || map.get(x, y).is_solid() {
                continue;
            }
            seen[y * s + x] = true;
            count += 1;
            todo.extend([(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]);
        }
        count
    }

    #[test]
    fn connected_with_loops_rooms_and_landmarks() {
        for seed in 0..20 {
            let l = generate(seed);
            let m = &l.map;
            assert_eq!(m.size(), 2 * MAZE_CELLS + 1);
            // The border is closed.
            for k in 0..m.size() {
                assert!(m.get(k, 0).is_solid() && m.get(0, k).is_solid());
                assert!(m.get(k, m.size() - 1).is_solid() && m.get(m.size() - 1, k).is_solid());
            }
            let free = m.free_tiles();
            // A perfect maze has 2n² - 1 floor tiles; loops and rooms add more
            // (pillars take a few back).
            assert!(free > 2 * MAZE_CELLS * MAZE_CELLS + 10, "{seed}: {free}");
            assert_eq!(reachable(m, l.start_tiles[0]), free, "seed {seed}");
            assert!(m.count(TileKind::Pillar) > 0, "seed {seed}");
            assert_eq!(m.count(TileKind::Door), 10);
            assert_eq!(m.count(TileKind::Panel), 18);
            assert!(l.sprites.len() >= 4, "seed {seed}: {}", l.sprites.len());
            assert!(!l.start_tiles.is_empty());
        }
        assert_ne!(generate(1).map, generate(2).map);
        assert_eq!(generate(3).map, generate(3).map);
    }

    #[test]
    fn sprite_silhouettes_fit_their_boxes() {
        for k in SpriteKind::ALL {
            let (hw, h) = (k.half_width(), k.height());
            assert!(k.covers(0.0, h * 0.5) || k == SpriteKind::Lamp);
            assert!(k.covers(0.0, h * 0.3));
            assert!(!k.covers(hw * 1.05, h * 0.5));
            assert!(!k.covers(0.0, h * 1.05));
            assert!(!k.covers(0.0, -0.01));
        }
    }
}
