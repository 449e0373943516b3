(function(){
const info=JSON.parse(document.getElementById('node-info').textContent);
const tip=document.getElementById('tip');
const esc=s=>s.replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const vis=s=>esc(s).replace(/\n/g,'⏎').replace(/\t/g,'→');
const fmt=x=>Math.abs(x)>=1e-3||x===0?x.toFixed(3):x.toExponential(2);
document.querySelectorAll('svg.circuit .node').forEach(g=>{
  const t=g.querySelector('title'); const plain=t?t.textContent:''; if(t) t.remove();
  const name=g.dataset.node, svg=g.ownerSVGElement;
  g.addEventListener('mouseenter',()=>{
    const d=info[name]; const head=plain.split('\n')[1]||'';
    let h='<b>'+esc(name)+'</b>'+(head.startsWith('head')?' <span style="color:#777">('+esc(head)+')</span>':'');
    if(d){h+='<div>mean activation: <b>'+fmt(d.mean)+'</b></div>';
      if(d.top.length){
        h+='<div style="margin-top:4px;color:#555">top pretraining contexts (value: …context[token])</div><table>';
        d.top.forEach(c=>{h+='<tr><td>'+fmt(c.value)+'</td><td class="ctx">…'+vis(c.prefix)+'<mark>'
          +vis(c.token)+'</mark></td></tr>';});
        h+='</table>';}}
    else h+='<div style="color:#777">no activation statistics</div>';
    tip.innerHTML=h; tip.style.display='block';
    svg.classList.add('focus'); g.classList.add('hl');
    svg.querySelectorAll('.edge').forEach(e=>{if(e.dataset.s===name||e.dataset.d===name){e.classList.add('hl');
      const o=e.dataset.s===name?e.dataset.d:e.dataset.s;
      const n=svg.querySelector('.node[data-node="'+o+'"]'); if(n) n.classList.add('hl');}});
  });
  g.addEventListener('mousemove',ev=>{const w=tip.offsetWidth,hh=tip.offsetHeight;
    let x=ev.clientX+14,y=ev.clientY+14;
    if(x+w>innerWidth-8)x=ev.clientX-w-14; if(y+hh>innerHeight-8)y=ev.clientY-hh-14;
    tip.style.left=x+'px'; tip.style.top=Math.max(4,y)+'px';});
  g.addEventListener('mouseleave',()=>{tip.style.display='none'; svg.classList.remove('focus');
    svg.querySelectorAll('.hl').forEach(e=>e.classList.remove('hl'));});
});
})();
